"""`tonebridge login`: sign in to TONE3000 and keep the session.

Today's service signs in with OAuth 2.0 (tonecore.oauth); the seed's v1 service with an
emailed 6-digit code and an `api_key` (tonecore.auth.OtpSignIn).  Three ways to finish:

* a loopback listener (default): a tiny HTTP server on 127.0.0.1:<free port> is the
  redirect address, at a path with a random nonce; the browser lands on it with `code`
  and `state` (or the seed's `api_key`); the listener accepts only the callback of the
  sign-in it started (its nonce, and for OAuth its `state`: another local program
  cannot sign the CLI in to an account of its choosing); the CLI redeems the code,
  stores the tokens and only then answers the browser with "You're signed in";
* `--paste` (the browser runs elsewhere): the user pastes the address the browser
  ended on (or the seed's bare api_key);
* `--device` (no browser here, e.g. over SSH): the device grant (RFC 8628); the CLI
  prints a short code, the verification address and a QR code of it for a phone,
  and polls quietly until the user approved.

The listener never logs requests: the callback's query string holds the secret.
"""

import html
import http.server
import secrets
import sys
import threading
import webbrowser

import click
import segno

from tonecore.auth import callback_params
from tonecore.errors import SignInError, ToneError
from tonecore.oauth import device_authorize, device_sign_in

LOOPBACK = "127.0.0.1"
CALLBACK_PATH = "/callback"
# With --paste nothing listens: the browser fails to load the address, and its address
# bar shows the URL to copy.  OAuth accepts a loopback address without registration
# (port 1: nothing listens there); a code is worthless without the CLI's PKCE verifier.
# The seed's api_key is a bearer secret, so its address cannot resolve at all (.invalid).
PASTE_REDIRECT_OAUTH = "http://127.0.0.1:1/tonebridge-callback"
PASTE_REDIRECT_OTP = "http://tonebridge-callback.invalid/"
OUTCOME_WAIT_S = 60.0

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>tonebridge</title>
<style>body{font-family:system-ui,sans-serif;margin:3em auto;max-width:32em;padding:0 1em;text-align:center}</style>
</head><body><main><h1>%s</h1><p>%s</p></main></body></html>
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "tonebridge"
    sys_version = ""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        listener = self.server.listener
        path, _, query = self.path.partition("?")
        if not secrets.compare_digest(path, listener.path):
            self._page(404, "Not found", "This is tonebridge's sign-in listener.")
            return
        params = callback_params(query)
        if not (params.get("api_key") or params.get("code") or params.get("error") or params.get("canceled")):
            self._page(400, "Nothing to do", "This address expects the TONE3000 sign-in callback.")
            return
        if listener.state is not None and params.get("state") != listener.state:
            self._page(400, "Not this sign-in", "This answer is not for the sign-in tonebridge started.")
            return
        outcome = listener.deliver(params)
        if outcome is None:
            self._page(504, "Still working", "Check the terminal where you ran tonebridge login.")
        elif outcome[0]:
            self._page(200, "You're signed in", "Signed in as %s. You can close this tab." % outcome[1])
        else:
            self._page(400, "Sign-in failed", outcome[1] + " See the terminal for details.")

    def _page(self, status, title, text):
        body = (PAGE % (html.escape(title, quote=False), html.escape(text, quote=False))).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002
        """Silence: the request line carries the api_key."""


class CallbackListener:
    """A one-shot loopback HTTP server that receives the sign-in redirect.

    Use as a context manager; `redirect_url` is what to give TONE3000, `wait(timeout)`
    returns the callback's parameters, and `finish(ok, text)` answers the browser.
    """

    def __init__(self, host=LOOPBACK, port=0, state=None):
        self.path = "%s/%s" % (CALLBACK_PATH, secrets.token_urlsafe(12))
        self.state = state  # OAuth: only the callback carrying this state is taken
        self.server = http.server.ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self.server.listener = self
        self._lock = threading.Lock()
        self._params = None
        self._arrived = threading.Event()
        self._answered = threading.Event()
        self._outcome = None
        self._thread = threading.Thread(target=self.server.serve_forever, name="tonebridge-login", daemon=True)

    @property
    def redirect_url(self):
        host, port = self.server.server_address[:2]
        return "http://%s:%d%s" % (host, port, self.path)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def deliver(self, params):
        """Called by the handler thread: hand over `params`, wait for the outcome."""
        with self._lock:
            first = self._params is None
            if first:
                self._params = params
        if not first:
            return (False, "A sign-in callback was already received.")
        self._arrived.set()
        self._answered.wait(OUTCOME_WAIT_S)
        return self._outcome

    def wait(self, timeout_s):
        """The callback's parameters, or None if none arrived within `timeout_s`."""
        if not self._arrived.wait(timeout_s):
            return None
        return self._params

    def finish(self, ok, text):
        """Answer the waiting browser: (True, username) or (False, message)."""
        self._outcome = (ok, text)
        self._answered.set()

    def close(self):
        if not self._answered.is_set():
            self.finish(False, "Sign-in was cancelled.")
        self.server.shutdown()
        self.server.server_close()


def print_start(url, qr, otp):
    """Show the sign-in URL (one line, for copying) and, if asked, a QR code of it."""
    if otp:
        click.echo("To sign in to TONE3000 with an emailed 6-digit code, open:")
    else:
        click.echo("To sign in to TONE3000, open:")
    click.echo("  " + url)
    if qr:
        draw_qr(url)


def draw_qr(url):
    """A QR code of `url` on the terminal (for a phone's camera)."""
    try:
        segno.make(url, error="l").terminal(out=sys.stdout, compact=True)
        sys.stdout.flush()
    except (UnicodeError, OSError):
        pass  # a terminal that cannot draw blocks: the URL is printed too


def exchange(conn, callback):
    """Trade the callback (URL, query or dict; the seed's bare api_key) for tokens;
    return the User.

    Raises:
        SignInError: the callback holds an error, no credentials, or another
            sign-in's state, or the service refused them.
    """
    conn.run(conn.client.sign_in(callback))
    return conn.run(conn.client.user())


def _is_otp(flow):
    return flow.name == "otp"


def login_with_listener(make_flow, connect, open_browser, timeout_s):
    """Sign in through a loopback listener.

    Args:
        make_flow: function(redirect_url) -> the SignInFlow (PKCE, or the seed's OTP).
        connect: function(flow) -> transport.Connection (not loading tokens).
    Returns:
        the signed-in User.
    """
    with CallbackListener() as listener:
        flow = make_flow(listener.redirect_url)
        listener.state = getattr(flow, "state", None)
        url = flow.start_url()
        print_start(url, False, _is_otp(flow))  # no QR: a phone cannot reach this computer's loopback
        if open_browser:
            try:
                opened = webbrowser.open(url)
            except Exception:  # noqa: BLE001 - any browser trouble: the URL is printed
                opened = False
            click.echo("Opened your browser." if opened else "Open the address above in a browser.")
        click.echo("Waiting for the sign-in to finish (Ctrl-C to cancel)...")
        params = listener.wait(timeout_s)
        if params is None:
            raise SignInError("no sign-in arrived within %d s; run `tonebridge login` again" % timeout_s)
        try:
            with connect(flow) as conn:
                user = exchange(conn, params)
        except ToneError as error:
            listener.finish(False, str(error))
            raise
        listener.finish(True, user.username)
        return user


def login_with_paste(make_flow, connect, qr, read_line=None):
    """Sign in by pasting the address the browser ended on (or the seed's bare api_key).

    Args:
        read_line: function() -> a line, "" at end of input (default: stdin).
    Returns:
        the signed-in User.
    """
    probe = make_flow(PASTE_REDIRECT_OTP)
    otp = _is_otp(probe)
    flow = probe if otp else make_flow(PASTE_REDIRECT_OAUTH)
    redirect = PASTE_REDIRECT_OTP if otp else PASTE_REDIRECT_OAUTH
    print_start(flow.start_url(), qr, otp)
    click.echo("When you are done, the browser goes to an address starting with")
    click.echo("  %s?%s  (it will not load; that is expected)." % (redirect, "api_key=..." if otp else "code=..."))
    click.echo("Paste that whole address%s here: " % (" (or just the api_key)" if otp else ""), nl=False)
    line = (read_line or sys.stdin.readline)()
    if not line:
        click.echo("")
        raise SignInError("no address was pasted (end of input); sign-in cancelled")
    line = line.strip()
    if not line:
        raise SignInError("nothing was pasted; sign-in cancelled")
    with connect(flow) as conn:
        return exchange(conn, line)


def login_with_device(flow, connect, qr):
    """Sign in with the device grant: show the code and where to enter it, then poll.

    Returns:
        the signed-in User.
    """
    with connect(flow) as conn:
        grant = conn.run(device_authorize(conn.client, flow))
        target = grant.verification_uri_complete or grant.verification_uri
        click.echo("To sign in, open %s on a phone or computer" % grant.verification_uri)
        click.echo("and enter the code:  %s" % grant.user_code)
        if qr:
            click.echo("Or scan this QR code (it carries the code):")
            draw_qr(target)
        minutes = max(1, (grant.expires_ms - conn.client.clock_ms()) // 60000)
        click.echo("Waiting for you to approve (the code is valid for %d min; Ctrl-C to cancel)..." % minutes)
        conn.run(device_sign_in(conn.client, flow, grant))
        return conn.run(conn.client.user())
