"""The pedal's web page (microdot): status, sign-in, models, sync.

    GET  /                       the page (phone-sized); without an owner's cookie only
                                 the board and how to pair
    GET  /status.json            the same status as JSON (without the cookie: the board
                                 and "paired": false)
    POST /pair                   pair this browser (footswitch held, or the console's PIN)
    POST /owners/forget          unpair every phone
    GET  /signin                 redirect to TONE3000's sign-in (pedal.signin): today's OAuth
                                 with the pedal's own address as redirect_uri (the LAN
                                 relay), or the seed's OTP-only sign-in
    GET  /callback?code&state    today's answer: redeem the code (tokens on flash), back to /
    GET  /callback/<nonce>?api_key=...
                                 the seed's answer: exchange the key, back to /
    POST /signin/device          a sign-in with a code shown here (the device grant)
    POST /sync                   start a sync (202; 409 when one runs; 401 signed out)
    POST /models/<id>/activate   make a model the active one
    GET  /models/<id>/delete     "delete this model?" (the list's Delete links here)
    POST /models/<id>/delete     delete a model (a form must say confirm=1)
    POST /signout                forget the tokens
    GET  /wifi, POST /wifi       choose the Wi-Fi network, save it, restart into it

Forms post and come back to the page with a 303 (post/redirect/get): `/?m=<code>`
names a notice from messages.NOTICES, never free text.  A client that asks for JSON
(Accept: application/json) gets JSON and a status code instead.  The HTML is page.py.

Guards, because anyone on the network, and any web page the user visits, can reach the
pedal (the server loop in webserver.py has already bounded the request and checked that
`Host` names the pedal):
  * every route but the page, /status.json, /pair and the callbacks needs an owner's
    cookie (owner.py); without it the page and status show no personal data;
  * a callback is accepted only with the state (or nonce) of a sign-in this page started
    (single use, 15 minutes, a few at once), so nobody can link the pedal to their own
    account.  It ends on a small page that moves on to `/` by itself: the browser then
    sends the SameSite=Strict cookie, which it withholds on the redirect from TONE3000;
  * a POST whose Origin is not the pedal itself is refused (403).
"""

import gc
import json

from microdot import Microdot, Request, Response

from tonecore.errors import ToneError

from . import page as pages
from .console import log
from .messages import in_words
from .owner import COOKIE, PairingRefused, set_cookie

Request.max_content_length = 1024  # only tiny forms come in
Request.max_body_length = 1024
Request.max_readline = 1024

HTML = "text/html; charset=utf-8"

# Routes a browser that is not paired may use: (method, path or path prefix ending "/").
OPEN = (("GET", "/"), ("GET", "/status.json"), ("POST", "/pair"), ("GET", "/callback"), ("GET", "/callback/"))


def _wants_json(request):
    return "application/json" in (request.headers.get("Accept") or "")


def status_json(pedal, owner=True, models=True):
    """/status.json as a generator: the status (with `progress` and `key`, what the
    page's script shows), then the models one at a time; for a browser that is not
    paired only the board."""
    if not owner:
        yield json.dumps({"board": pedal.board.NAME, "paired": False})
        return
    status = pedal.status(False)
    status["paired"] = True
    status["progress"] = pages.progress(status["sync"])
    status["key"] = pages.status_key(status)
    head = json.dumps(status)
    status = None
    if not models:
        yield head
        return
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


def _open_route(request):
    for method, path in OPEN:
        if request.method == method and (request.path == path or (path[-1] == "/" and path != "/"
                                                                  and request.path.startswith(path))):
            return True
    return False


def _origin_host(origin):
    """The host name of an Origin header value, lower case, without the port."""
    rest = origin.split("://", 1)[-1].lower()
    if rest.startswith("["):
        return rest[: rest.find("]") + 1]
    return rest.split(":", 1)[0]


def make_app(pedal):
    app = Microdot()

    def html(body, status=200, headers=None):
        head = {"Content-Type": HTML, "Cache-Control": "no-store"}
        if headers:
            head.update(headers)
        return body, status, head

    def back(request, code, data, status=200):
        """JSON for a client that asks for it, else back to the page with notice `code`."""
        if _wants_json(request):
            return data, status
        return Response.redirect("/?m=" + code, 303)

    def is_owner(request):
        return pedal.owners.is_owner(request.cookies.get(COOKIE))

    @app.before_request
    async def guard(request):
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin and (origin == "null" or not pedal.allowed_host(_origin_host(origin))):
                return {"error": "requests from other sites are refused"}, 403
        if not _open_route(request) and not is_owner(request):
            if _wants_json(request) or request.method != "POST":
                return {"error": "pair this phone with the pedal first (see its page)"}, 401
            return html(pages.pairing_page(pedal, "Pair this phone first."), 401)

    @app.errorhandler(404)
    async def not_found(request):
        if _wants_json(request):
            return {"error": "no such page"}, 404
        return html(pages.landing("There is no such page on the pedal.", True), 404)

    @app.get("/")
    async def index(request):
        if not is_owner(request):
            return html(pages.pairing_page(pedal))
        text, good = pages.message_for(request.args.get("m"))
        return html(pages.page(pedal, text, good))

    @app.get("/status.json")
    async def status(request):
        gc.collect()  # heap.alloc is then the live data (tests watch it return to its baseline)
        return status_json(pedal, is_owner(request), request.args.get("models") != "0"), 200, {
            "Content-Type": "application/json", "Cache-Control": "no-store"}

    @app.post("/pair")
    async def pair(request):
        body = request.form or request.json
        try:
            token = pedal.owners.pair(body.get("pin") if isinstance(body, dict) else None)
        except PairingRefused as exc:
            if _wants_json(request):
                return {"paired": False, "error": str(exc)}, 403
            return html(pages.pairing_page(pedal, str(exc)), 403)
        cookie = {"Set-Cookie": set_cookie(token)}
        if _wants_json(request):
            return {"paired": True}, 200, cookie
        cookie["Location"] = "/?m=paired"
        return "", 303, cookie

    @app.post("/owners/forget")
    async def forget(request):
        pedal.owners.forget_all()
        return back(request, "unpaired", {"paired": False})

    @app.get("/signin")
    async def signin(request):
        try:
            return Response.redirect(pedal.signins.start(), 302)
        except ToneError as exc:
            return html(pages.page(pedal, in_words(exc)), 400)

    @app.post("/signin/device")
    async def signin_device(request):
        try:
            pedal.signins.start_device()
        except ToneError as exc:
            if _wants_json(request):
                return {"started": False, "error": str(exc)}, 400
            return html(pages.page(pedal, in_words(exc)), 400)
        if _wants_json(request):
            return {"started": True}, 202
        return Response.redirect("/", 303)

    async def _finish(request, key, names):
        flow = pedal.signins.take(key or "")
        if flow is None:
            log("sign-in: refused an answer to a sign-in this pedal did not start")
            return html(pages.landing("This sign-in link is used up, was replaced by a newer sign-in, or is not from "
                                      "this pedal. Start again from the pedal's page.", True), 400)
        params = {}
        for name in names:
            value = request.args.get(name)
            if value is not None:
                params[name] = value
        try:
            await pedal.signins.finish(flow, params)
        except ToneError as exc:
            log("sign-in: failed: %s" % exc)
            pedal.signins.error = words = in_words(exc)
            return html(pages.landing(words, True), 400)
        return html(pages.landing("Signed in."))

    @app.get("/callback")
    async def callback(request):
        return await _finish(request, request.args.get("state"),
                             ("code", "state", "error", "error_description", "canceled"))

    @app.get("/callback/<nonce>")
    async def callback_v1(request, nonce):
        return await _finish(request, nonce, ("api_key", "error", "error_description", "message"))

    @app.post("/sync")
    async def sync(request):
        api = _wants_json(request) or not request.form  # the page's form sends a field; API clients none
        if not pedal.session.signed_in:
            if api:
                return {"started": False, "error": "not signed in"}, 401
            return Response.redirect("/?m=not-signed-in", 303)
        started = pedal.start_sync()
        if api:
            return {"started": started, "sync": pedal.sync.status() if pedal.sync else None}, 202 if started else 409
        return Response.redirect("/?m=" + ("sync-started" if started else
                                           "pushing" if pedal.serial_transfer is not None else "sync-running"), 303)

    def _installed(request, mid):
        model_id = _model_id(mid)
        if model_id is None or pedal.library.find(model_id) is None:
            return None, back(request, "gone", {"error": "model %s is not installed" % mid}, 404)
        return model_id, None

    @app.post("/models/<mid>/activate")
    async def activate(request, mid):
        model_id, refused = _installed(request, mid)
        if refused:
            return refused
        pedal.library.activate(model_id)
        log("library: model %d is active" % model_id)
        return back(request, "active", {"active": model_id})

    @app.get("/models/<mid>/delete")
    async def delete_page(request, mid):
        model_id, refused = _installed(request, mid)
        if refused:
            return Response.redirect("/?m=gone", 303)
        for model in pedal.model_items():
            if model["id"] == model_id:
                return html(pages.confirm_delete(pedal, model))

    @app.post("/models/<mid>/delete")
    async def delete(request, mid):
        model_id, refused = _installed(request, mid)
        if refused:
            return refused
        if pedal.syncing():
            return back(request, "busy", {"error": "a sync is running; try again when it is done"}, 409)
        if not _wants_json(request) and (request.form or {}).get("confirm") != "1":
            return Response.redirect("/models/%d/delete" % model_id, 303)  # ask first
        pedal.library.delete(model_id)
        log("library: model %d deleted" % model_id)
        return back(request, "deleted", {"deleted": model_id})

    @app.post("/signout")
    async def signout(request):
        await pedal.sign_out()
        return back(request, "signed-out", {"signed_in": False})

    @app.get("/wifi")
    async def wifi(request):
        from . import wifi

        return html(pages.wifi_page(pedal, wifi.scan()))

    @app.post("/wifi")
    async def wifi_save(request):
        from . import wifi

        form = request.form or request.json or {}
        try:
            ssid = wifi.save(pedal.library.root, form.get("ssid"), form.get("password"))
        except ValueError as exc:
            if _wants_json(request):
                return {"saved": False, "error": str(exc)}, 400
            return html(pages.wifi_page(pedal, wifi.scan(), str(exc)), 400)
        pedal.restart_soon("joining the Wi-Fi network %s" % ssid)
        if _wants_json(request):
            return {"saved": True, "ssid": ssid}, 202
        return html(pages.restarting_page(pedal, ssid))

    return app
