"""The pedal's web page (microdot): status, sign-in, models, sync.

    GET  /                       the page (phone-sized)
    GET  /status.json            the same status as JSON
    GET  /signin                 redirect to TONE3000's sign-in (pedal.signin): today's OAuth
                                 with the pedal's own address as redirect_uri (the LAN
                                 relay), or the seed's OTP-only sign-in
    GET  /callback?code&state    today's answer: redeem the code (tokens on flash), back to /
    GET  /callback/<nonce>?api_key=...
                                 the seed's answer: exchange the key, back to /
    POST /signin/device          a sign-in with a code shown here (the device grant)
    POST /sync                   start a sync (202; 409 when one runs; 401 signed out)
    POST /models/<id>/activate   make a model the active one
    POST /models/<id>/delete     delete a model
    POST /signout                forget the tokens

Forms post and get a 303 back to `/`; a client asking for JSON (Accept) gets JSON.

Two guards, because any web page the user visits can send their browser to the pedal:
a callback is accepted only with the state (or nonce) of a sign-in this page started
(single use, 15 minutes, a few at once), so nobody can link the pedal to their own
account; and a POST whose Origin names another site is refused (403).
"""

import json

from microdot import Microdot, Request, Response

from tonecore.errors import ToneError

from .console import log

Request.max_content_length = 1024  # only tiny forms come in
Request.max_body_length = 1024
Request.max_readline = 1024

_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"))

_STYLE = ("body{font-family:sans-serif;margin:0 auto;max-width:32em;padding:1em;line-height:1.4}"
          "button,.b{font-size:1em;padding:.6em 1em;margin:.2em 0;border-radius:.4em;border:1px solid #444;"
          "background:#eee;color:#000;text-decoration:none;display:inline-block}"
          ".p{background:#1a5fb4;color:#fff}li{margin:.5em 0}form{display:inline}.e{color:#a00}")


def esc(text):
    text = "%s" % (text,)
    for old, new in _ESCAPES:
        text = text.replace(old, new)
    return text


def _kb(count):
    return "?" if count is None else "%d KB" % (count // 1024)


def _wants_json(request):
    return "application/json" in (request.headers.get("Accept") or "")


def _back(request, data, status=200):
    if _wants_json(request):
        return data, status
    return Response.redirect("/", 303)


def page(pedal, notice=None):
    """The page, as a generator of small strings (never one big string in the heap)."""
    status = pedal.status(False)
    yield ('<!doctype html><html><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">'
           "<title>tonebridge pedal</title><style>")
    if status["sign_in"]["device"]:
        yield '</style><meta http-equiv="refresh" content="5"><style>'  # until the code was entered
    yield _STYLE
    yield "</style></head><body><h1>tonebridge</h1><p>%s</p>" % esc(status["board"])
    if notice:
        yield '<p class="e">%s</p>' % esc(notice)
    if status["signed_in"]:
        yield "<p>Signed in%s." % (" as <b>" + esc(status["user"]) + "</b>" if status["user"] else "")
        yield ' <form method="post" action="/signout"><button>Sign out</button></form></p>'
    else:
        if status["message"]:
            yield '<p class="e">TONE3000 needs you to sign in again.</p>'
        sign_in = status["sign_in"]
        device = sign_in["device"]
        if device:
            yield ("<p>On a phone or computer, open <b>%s</b> and enter the code</p><p><b style=\"font-size:1.6em;"
                   "letter-spacing:.1em\">%s</b></p>"
                   % (esc(device["verification_uri"]), esc(device["user_code"])))
            for part in _qr(device["verification_uri_complete"] or device["verification_uri"]):
                yield part
            yield "<p>This page updates when you are done.</p>"
        elif sign_in["mode"] == "no-key":
            yield ('<p class="e">This pedal has no TONE3000 app key yet: put "client_id" (a publishable key '
                   'from TONE3000, Settings, API Keys) in its config.json.</p>')
        else:
            if sign_in["error"]:
                yield '<p class="e">Sign-in failed: %s</p>' % esc(sign_in["error"])
            yield '<p><a class="b p" href="/signin">Sign in with TONE3000</a></p>'
            if sign_in["mode"] == "oauth":
                yield ('<form method="post" action="/signin/device"><button>Sign in with a code</button></form>'
                       "<p>(for a phone that is not on this pedal's network)</p>")
    sync = status["sync"]
    if sync:
        line = "Sync: " + sync["state"]
        current = sync["current"]
        if current:
            line += " - %s %s of %s" % (current["name"], _kb(current["bytes"]), _kb(current["total"]))
        elif sync["state"] == "done":
            line += " - %d new, %d up to date, %d failed" % (sync["installed"], sync["up_to_date"], sync["failed"])
            if sync["too_large"]:
                line += ", %d too large for this pedal" % sync["too_large"]
        yield "<p>%s</p>" % esc(line)
        if sync["error"]:
            yield '<p class="e">%s</p>' % esc(sync["error"])
    if status["signed_in"]:
        yield ('<form method="post" action="/sync"><input type="hidden" name="from" value="page">'
               '<button class="p">Sync now</button></form>')
    yield "<h2>Models</h2>"
    if not status["model_count"]:
        yield "<p>None yet. Sign in and sync your favorites.</p>"
    yield "<ul>"
    for model in pedal.model_items():
        yield "<li><b>%s</b> %s %s, %s " % (esc(model["name"]), esc(model["platform"]), esc(model["size"] or ""),
                                            _kb(model["bytes"]))
        if model["active"]:
            yield "<i>active</i> "
        else:
            yield '<form method="post" action="/models/%d/activate"><button>Use</button></form> ' % model["id"]
        yield '<form method="post" action="/models/%d/delete"><button>Delete</button></form></li>' % model["id"]
    yield "</ul><p>Flash: %s used, %s free. " % (_kb(status["used_bytes"]), _kb(status["free_bytes"]))
    yield '<a href="/status.json">status.json</a></p></body></html>'


def _qr(address):
    """A QR code of `address` (another device's camera can open it), as SVG pieces;
    nothing when the heap is short or the address too long (the text is shown)."""
    from tonecore.qr import QrCode, svg_parts

    try:
        code = QrCode(address)
    except (MemoryError, ValueError):
        return
    yield "<p>"
    for part in svg_parts(code, 4, 2):
        yield part
    yield "</p>"


def status_json(pedal):
    """/status.json as a generator: the status, then the models one at a time."""
    head = json.dumps(pedal.status(False))
    yield head[:-1] + ', "models": ['
    first = True
    for model in pedal.model_items():
        yield ("" if first else ", ") + json.dumps(model)
        first = False
    yield "]}"


def _model_id(text):
    try:
        return int(text)
    except ValueError:
        return None


def make_app(pedal):
    app = Microdot()

    def html(body, status=200):
        return body, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}

    @app.get("/")
    async def index(request):
        return html(page(pedal, request.args.get("notice")))

    @app.get("/status.json")
    async def status(request):
        return status_json(pedal), 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}

    @app.before_request
    async def same_origin_posts(request):
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin and origin.split("://", 1)[-1] != request.headers.get("Host"):
                return {"error": "requests from other sites are refused"}, 403

    @app.get("/signin")
    async def signin(request):
        try:
            return Response.redirect(pedal.signins.start(), 302)
        except ToneError as exc:
            return html(page(pedal, str(exc)), 400)

    @app.post("/signin/device")
    async def signin_device(request):
        try:
            pedal.signins.start_device()
        except ToneError as exc:
            return html(page(pedal, str(exc)), 400)
        if _wants_json(request):
            return {"started": True}, 202
        return Response.redirect("/", 303)

    async def _finish(request, key, names):
        flow = pedal.signins.take(key or "")
        if flow is None:
            log("sign-in: refused an answer to a sign-in this pedal did not start")
            return html(page(pedal, "That sign-in answer is not from this pedal, or it expired; use Sign in below."),
                        400)
        params = {}
        for name in names:
            value = request.args.get(name)
            if value is not None:
                params[name] = value
        try:
            await pedal.signins.finish(flow, params)
        except ToneError as exc:
            log("sign-in: failed: %s" % exc)
            return html(page(pedal, "Sign-in failed: %s" % exc), 400)
        return Response.redirect("/", 303)

    @app.get("/callback")
    async def callback(request):
        return await _finish(request, request.args.get("state"),
                             ("code", "state", "error", "error_description", "canceled"))

    @app.get("/callback/<nonce>")
    async def callback_v1(request, nonce):
        return await _finish(request, nonce, ("api_key", "error", "error_description", "message"))

    @app.post("/sync")
    async def sync(request):
        if not pedal.session.signed_in:
            return {"started": False, "error": "not signed in"}, 401
        started = pedal.start_sync()
        if _wants_json(request) or not request.form:
            return {"started": started, "sync": pedal.sync.status()}, 202 if started else 409
        return Response.redirect("/", 303)

    @app.post("/models/<mid>/activate")
    async def activate(request, mid):
        model_id = _model_id(mid)
        if pedal.library.find(model_id) is None:
            return {"error": "model %s is not installed" % mid}, 404
        pedal.library.activate(model_id)
        log("library: model %d is active" % model_id)
        return _back(request, {"active": model_id})

    @app.post("/models/<mid>/delete")
    async def delete(request, mid):
        model_id = _model_id(mid)
        if pedal.library.find(model_id) is None:
            return {"error": "model %s is not installed" % mid}, 404
        if pedal.syncing():
            return {"error": "a sync is running; try again when it is done"}, 409
        pedal.library.delete(model_id)
        log("library: model %d deleted" % model_id)
        return _back(request, {"deleted": model_id})

    @app.post("/signout")
    async def signout(request):
        await pedal.sign_out()
        return _back(request, {"signed_in": False})

    return app
