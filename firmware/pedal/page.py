"""The pedal's web page as HTML: what a phone shows (the routes are in portal.py).

Everything is a generator of small strings, so no page is ever one big string in the
pedal's heap.  The page works without JavaScript (forms post and come back, a
`<noscript>` refresh while something is moving); with it, a few lines poll
/status.json?models=0 and update the sync's progress in place, reloading only when the
list of models or the sign-in changed.

Wording: plain words for people (the board's title, "NAM · standard", "check the pedal's
Wi-Fi"), every message announced (`role="alert"`), every button named for its model.
"""

from .messages import NOTICES

PLATFORM_LABELS = {"nam": "NAM", "ir": "Impulse response", "aida-x": "AIDA-X", "proteus": "Proteus",
                   "aa-snapshot": "Snapshot"}
GROUPS = ("nam", "ir", "aida-x", "proteus", "aa-snapshot")  # the list's order (dicts have none on MicroPython)
GROUP_OPEN_MAX = 8  # a group of models this small starts unfolded

_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"))

# The style, in pieces of ~300 bytes: bytes constants are sent as they are, where one big
# string would need a big free block of heap to be encoded (hard to find during a sync).
_STYLE = (
    b'body{font-family:system-ui,sans-serif;margin:0 auto;max-width:34em;padding:.8em;line-height:1.4;color:#111;background:#fff}h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .4em}',
    b'button,.b{font:inherit;padding:.55em .9em;margin:.15em 0;border-radius:.4em;border:1px solid #555;background:#eee;color:#000;text-decoration:none;display:inline-flex;align-items:center;min-height:2.6em;box-sizing:border-box;vertical-align:middle}button:disabled{opacity:.55}',
    b'.p{background:#1a5fb4;color:#fff;border-color:#1a5fb4}.d{color:#a00;border-color:#a00;background:#fff}form{display:inline}.e{color:#a00;font-weight:600}.ok{color:#26722a;font-weight:600}.m{color:#444;font-size:.92em}ul{list-style:none;padding:0;margin:0}',
    b'li{display:flex;flex-wrap:wrap;align-items:center;gap:.4em;padding:.5em 0;border-bottom:1px solid #ddd}.n{flex:1 1 12em;min-width:0;overflow-wrap:anywhere}.box{border:1px solid #bbb;border-radius:.5em;padding:.6em .8em;margin:.6em 0}summary{cursor:pointer;padding:.5em 0;font-weight:600}progress{width:100%;height:1.2em}',
    b'input{font:inherit;padding:.5em;max-width:100%}label{display:block;margin:.4em 0}',
)

# Polls while the page is open; reloads when what the list shows has changed.
_SCRIPT = (b"<script>(function(){var k=document.body.getAttribute('data-key');"
           b"function t(i,s){var e=document.getElementById(i);if(e&&e.textContent!==s)e.textContent=s}"
           b"function tick(){fetch('/status.json?models=0',{credentials:'same-origin',cache:'no-store'})"
           b".then(function(r){return r.json()}).then(function(d){if(d.key!==k){location.replace('/');return}"
           b"var s=d.progress;if(s){t('sync-line',s.line);t('sync-file',s.file||'');var b=document.getElementById("
           b"'sync-bar');if(b&&s.of){b.max=s.of;b.value=s.done}}}).catch(function(){}).then(function(){"
           b"setTimeout(tick,2000)})}setTimeout(tick,2000)})();</script>")


def esc(text):
    text = "%s" % (text,)
    for old, new in _ESCAPES:
        text = text.replace(old, new)
    return text


def kb(count):
    if count is None:
        return "?"
    if count >= 1024 * 1024:
        return "%d.%d MB" % (count // (1024 * 1024), count * 10 // (1024 * 1024) % 10)
    return "%d KB" % ((count + 1023) // 1024)


def label(platform, size):
    """"NAM · standard" for a model's platform and size class."""
    text = PLATFORM_LABELS.get(platform, platform or "?")
    return text + " · " + size if size else text


def head(refresh=None, key=None):
    """The page's start: `refresh` a <meta refresh> value (a landing page) or "live" (a
    noscript refresh while something moves); `key` for the script (see status_key)."""
    yield (b'<!doctype html><html lang="en"><head><meta charset="utf-8">'
           b'<meta name="viewport" content="width=device-width,initial-scale=1">'
           b"<title>tonebridge pedal</title>")
    if refresh == "live":
        yield b'<noscript><meta http-equiv="refresh" content="5"></noscript>'
    elif refresh:
        yield '<meta http-equiv="refresh" content="%s">' % refresh
    yield b"<style>"
    for part in _STYLE:
        yield part
    yield b"</style></head>"
    yield '<body data-key="%s"><main><h1>tonebridge</h1>' % esc(key or "")


def notice(text, good=False):
    if not text:
        return ""
    return '<p class="%s" role="%s">%s</p>' % ("ok" if good else "e", "status" if good else "alert", esc(text))


def pairing_page(pedal, message=None):
    """For a browser that is not paired: the board and how to pair, nothing personal."""
    for part in head():
        yield part
    yield '<p class="m">%s</p>' % esc(board_title(pedal))
    yield notice(message)
    yield ("<h2>Pair this phone</h2><p>Only paired phones can use this pedal. Hold the pedal's footswitch "
           "for %d seconds, then press Pair. Or type the PIN the pedal shows on its console.</p>"
           '<form method="post" action="/pair"><label for="pin">PIN (if you have one)</label> '
           '<input id="pin" name="pin" inputmode="numeric" autocomplete="one-time-code" maxlength="6" size="8"> '
           '<button class="p">Pair</button></form></main></body></html>' % (pedal.owners.hold_ms // 1000 or 1))


def landing(message, error=False):
    """Where a sign-in's callback ends: it moves on to `/` by itself (then the browser
    sends the owner's SameSite=Strict cookie, which it withholds on a redirect from
    TONE3000), so a reload never repeats the callback; the message stays readable for
    a browser that does not refresh."""
    for part in head("1;url=/" if error else "0;url=/"):
        yield part
    yield notice(message, not error)
    yield '<p><a class="b p" href="/">Back to the pedal</a></p></main></body></html>'


def board_title(pedal):
    return getattr(pedal.board, "TITLE", None) or pedal.board.NAME


def status_key(status):
    """What the account part and the model list show: when it changes, the page reloads.
    During a sync the list is left as it is (the progress line moves instead): the page
    reloads once, when the sync ends."""
    sync = status["sync"]
    running = bool(sync and sync["state"] in ("starting", "listing", "downloading"))
    models = "sync" if running else "%s.%s" % (status["model_count"], status["active"])
    return "%s.%s.%s.%s" % (status["signed_in"], models, bool(status["sign_in"]["device"]),
                            status.get("safe_mode") is not None)


def progress(sync):
    """The sync in words and numbers: {"line", "file", "done", "of"} (the page and
    /status.json show the same)."""
    if sync is None:
        return None
    state = sync["state"]
    done, of = sync.get("checked") or 0, sync.get("expected") or 0
    of = max(of, done)  # the tones' own counts can be short (models added since)
    current = sync["current"]
    got = sync.get("bytes_done") or 0
    if current:
        got += current["bytes"] or 0
    if state in ("starting", "listing"):
        line = "Sync: looking at your tones on TONE3000…"
    elif state == "downloading":
        line = "Sync: %d of %d models checked · %d new · %s downloaded" % (done, of, sync["installed"], kb(got)) \
            if of else "Sync: %d new · %s downloaded" % (sync["installed"], kb(got))
    elif state == "done":
        line = "Last sync: %d new, %d up to date" % (sync["installed"], sync["up_to_date"])
        if sync["failed"]:
            line += ", %d failed (see the console)" % sync["failed"]
        if sync["too_large"]:
            line += ", %d too large for this pedal" % sync["too_large"]
        if sync.get("library_full"):
            line += ", %d left out: the library is full" % sync["library_full"]
    else:
        line = "Sync stopped."
    file = None
    if current:
        file = "Now: %s, %s" % (current["name"], "starting…" if current["total"] is None else
                                "%s of %s" % (kb(current["bytes"]), kb(current["total"])))
    return {"line": line, "file": file, "done": done, "of": of}


def page(pedal, message=None, good=False):
    """The owner's page."""
    status = pedal.status(False)
    sync = status["sync"]
    running = pedal.syncing()
    device = status["sign_in"]["device"]
    for part in head("live" if running or device else None, status_key(status)):
        yield part
    yield '<p class="m">%s</p>' % esc(board_title(pedal))
    yield notice(message, good)
    if status.get("safe_mode"):
        yield notice("Safe mode: %s" % status["safe_mode"])
    # -- the account
    if status["signed_in"]:
        yield '<div class="box"><p>Signed in%s.</p>' % (" as <b>%s</b>" % esc(status["user"]) if status["user"] else "")
        yield '<form method="post" action="/signout"><button>Sign out</button></form></div>'
    else:
        for part in _sign_in(status, device):
            yield part
    # -- the sync
    if status["signed_in"] or sync:
        yield '<section aria-labelledby="sync-h"><h2 id="sync-h">Sync</h2><div aria-live="polite">'
        words = progress(sync)
        if words:
            yield '<p id="sync-line">%s</p>' % esc(words["line"])
            if running:
                yield ('<progress id="sync-bar" max="%d" value="%d" aria-label="Models checked"></progress>'
                       % (words["of"] or 1, words["done"]))
            yield '<p id="sync-file" class="m">%s</p>' % esc(words["file"] or "")
            if sync["error"]:
                yield notice(sync["error"])
        yield "</div>"
        if status["signed_in"]:
            yield ('<form method="post" action="/sync"><input type="hidden" name="from" value="page">'
                   '<button class="p"%s>%s</button></form>' % ((" disabled", "Syncing…") if running
                                                               else ("", "Sync now")))
        yield "</section>"
    # -- the models
    for part in _models(pedal, status, running):
        yield part
    try:
        room = max(0, pedal.library.room())  # what a model may take: the free space less the reserve
    except OSError:
        room = None
    yield ('<h2>This pedal</h2><p class="m">Models use %s of flash; %s free for more. '
           '<a href="/status.json">status.json</a></p>' % (kb(status["used_bytes"]), kb(room)))
    yield ('<p><a class="b" href="/wifi">Wi-Fi</a> <form method="post" action="/owners/forget">'
           "<button>Unpair all phones</button></form></p></main>")
    yield _SCRIPT
    yield "</body></html>"


def _sign_in(status, device):
    sign_in = status["sign_in"]
    yield '<div class="box">'
    if status["message"]:
        yield notice("TONE3000 needs you to sign in again.")
    if device:
        yield ("<p>On a phone or computer, open <b>%s</b> and enter the code</p><p><b style=\"font-size:1.6em;"
               "letter-spacing:.1em\">%s</b></p>" % (esc(device["verification_uri"]), esc(device["user_code"])))
        for part in _qr(device["verification_uri_complete"] or device["verification_uri"]):
            yield part
        yield "<p>This page updates when you are done.</p>"
    elif sign_in["mode"] == "no-key":
        yield notice('This pedal has no TONE3000 app key yet: put "client_id" (a publishable key from TONE3000, '
                     "Settings, API Keys) in its config.json.")
    else:
        if sign_in["error"]:
            yield notice(sign_in["error"])
        yield '<p><a class="b p" href="/signin">Sign in with TONE3000</a></p>'
        if sign_in["mode"] == "oauth":
            yield ('<form method="post" action="/signin/device"><button>Sign in with a code</button></form>'
                   '<p class="m">(for a phone that is not on this pedal\'s network)</p>')
    yield "</div>"


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


def _models(pedal, status, running):
    count = status["model_count"]
    yield '<section aria-labelledby="models-h"><h2 id="models-h">Models (%d)</h2>' % count
    if not count:
        yield "<p>None yet. Sign in and sync your favorites.</p></section>"
        return
    active = None
    counts = {}  # platform -> models: one pass over the list for the box and the groups
    for model in pedal.model_items():
        counts[model["platform"]] = counts.get(model["platform"], 0) + 1
        if model["active"]:
            active = model
    if active:
        yield ('<div class="box" id="playing"><p class="m">Playing now</p><p><b>%s</b><br><span class="m">%s · %s</span></p></div>'
               % (esc(active["name"]), esc(label(active["platform"], active["size"])), kb(active["bytes"])))
    else:
        yield '<p class="m">No model is active: press Use on one.</p>'
    if running:
        yield '<p class="m">Deleting waits until the sync is done.</p>'
    for platform in GROUPS:
        n = counts.get(platform, 0)
        if not n:
            continue
        yield '<details%s><summary>%s (%d)</summary><ul>' % (" open" if n <= GROUP_OPEN_MAX else "",
                                                              esc(PLATFORM_LABELS[platform]), n)
        for model in pedal.model_items():
            if model["platform"] != platform:
                continue
            name = esc(model["name"])
            yield '<li><span class="n"><b>%s</b><br><span class="m">%s · %s</span></span>' % (
                name, esc(label(platform, model["size"])), kb(model["bytes"]))
            if model["active"]:
                yield '<span class="ok">Active</span>'
            else:
                yield ('<form method="post" action="/models/%d/activate"><button aria-label="Use %s">Use</button>'
                       "</form>" % (model["id"], name))
            if running:
                yield '<button class="d" disabled aria-label="Delete %s (after the sync)">Delete</button>' % name
            else:
                yield '<a class="b d" href="/models/%d/delete" aria-label="Delete %s">Delete</a>' % (model["id"], name)
            yield "</li>"
        yield "</ul></details>"
    yield "</section>"


def confirm_delete(pedal, model):
    """Are you sure?  (A Delete link leads here; the form posts the real delete.)"""
    for part in head():
        yield part
    yield ("<h2>Delete this model?</h2><p><b>%s</b><br><span class=\"m\">%s · %s</span></p>"
           "<p>It is removed from the pedal's flash. The next sync brings it back while it is among your "
           "favorites.</p>" % (esc(model["name"]), esc(label(model["platform"], model["size"])), kb(model["bytes"])))
    yield ('<form method="post" action="/models/%d/delete"><input type="hidden" name="confirm" value="1">'
           '<button class="d">Delete</button></form> <a class="b" href="/">Cancel</a></main></body></html>'
           % model["id"])


def wifi_page(pedal, networks, message=None, good=False):
    """Choose the Wi-Fi network the pedal joins (`networks`: [(ssid, rssi, secure)], or
    None where the pedal has no radio to scan with)."""
    for part in head():
        yield part
    yield '<p class="m">%s</p><h2>Wi-Fi</h2>' % esc(board_title(pedal))
    yield notice(message, good)
    current = pedal.settings.get("wifi_ssid")
    if current:
        yield "<p>This pedal joins <b>%s</b>.</p>" % esc(current)
    if networks is None:
        yield "<p>This pedal has no Wi-Fi radio to scan with; type the network's name.</p>"
    elif not networks:
        yield "<p>No networks found. Type the network's name, or reload to scan again.</p>"
    yield '<form method="post" action="/wifi"><label for="ssid">Network</label>'
    if networks:
        yield '<select id="ssid" name="ssid">'
        for ssid, rssi, secure in networks:
            yield '<option value="%s">%s (%s%s)</option>' % (esc(ssid), esc(ssid), _bars(rssi),
                                                             ", locked" if secure else ", open")
        yield "</select>"
    else:
        yield '<input id="ssid" name="ssid" maxlength="32" required autocomplete="off">'
    yield ('<label for="password">Password</label><input id="password" name="password" type="password" '
           'maxlength="63" autocomplete="current-password"> <p><button class="p">Save and restart</button> '
           '<a class="b" href="/">Cancel</a></p></form>'
           '<p class="m">The pedal restarts and joins the network. Then open <b>http://%s.local/</b> on a phone '
           "on that network (or find the pedal's address in your router), and pair the phone there.</p>"
           "</main></body></html>" % esc(pedal.settings.get("hostname") or "tonebridge"))


def _bars(rssi):
    if rssi >= -60:
        return "strong"
    if rssi >= -75:
        return "good"
    return "weak"


def restarting_page(pedal, ssid):
    for part in head():
        yield part
    yield ('<h2>Joining %s</h2><p role="status">Saved. The pedal restarts now and joins <b>%s</b>.</p>'
           "<p>Connect this phone to %s, then open <b>http://%s.local/</b> (or the address your router gives "
           "the pedal) and pair the phone again by holding the footswitch.</p><p class=\"m\">If the pedal cannot "
           "join, it opens its own network again after 20 seconds.</p></main></body></html>"
           % (esc(ssid), esc(ssid), esc(ssid), esc(pedal.settings.get("hostname") or "tonebridge")))


def message_for(code):
    """(text, good) for a ?m= code on the page, or (None, False) for an unknown one."""
    return NOTICES.get(code, (None, False))
