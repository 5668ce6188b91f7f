"""`tonebridge login`: sign in with an emailed 6-digit code and keep the session.

Two ways to get the `api_key` TONE3000 hands back after the code is entered:

* a loopback listener (default): a tiny HTTP server on 127.0.0.1:<free port> is the
  redirect_url; the browser lands on /callback?api_key=…, the CLI exchanges the key
  (POST /auth/session), stores the tokens and only then answers the browser with
  "You're signed in" (or what went wrong);
* `--paste` (the browser runs on another device, e.g. a phone): the user pastes the
  address the browser ended on, or the bare api_key.

The server never logs requests: the callback's query string holds the api_key.
"""

import html
import http.server
import sys
import threading
import webbrowser

import click
import segno

from tonecore.auth import OtpSignIn, callback_params
from tonecore.errors import SignInError, ToneError

LOOPBACK = "127.0.0.1"
CALLBACK_PATH = "/callback"
# With --paste nothing listens: the browser fails to load this, and its address bar
# shows the URL (with api_key) to copy.
PASTE_REDIRECT_URL = "http://127.0.0.1/tonebridge-callback"
OUTCOME_WAIT_S = 60.0

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>tonebridge</title>
<style>body{font-family:system-ui,sans-serif;margin:3em auto;max-width:32em;text-align:center}</style>
</head><body><h1>%s</h1><p>%s</p></body></html>
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "tonebridge"
    sys_version = ""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path, _, query = self.path.partition("?")
        if path != CALLBACK_PATH:
            self._page(404, "Not found", "This is tonebridge's sign-in listener.")
            return
        params = callback_params(query)
        if not params.get("api_key") and not params.get("error"):
            self._page(400, "Nothing to do", "This address expects the TONE3000 sign-in callback.")
            return
        outcome = self.server.listener.deliver(params)
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

    def __init__(self, host=LOOPBACK, port=0):
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
        return "http://%s:%d%s" % (host, port, CALLBACK_PATH)

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


def print_start(url, qr):
    """Show the sign-in URL (one line, for copying) and, if asked, a QR code of it."""
    click.echo("To sign in to TONE3000 with an emailed 6-digit code, open:")
    click.echo("  " + url)
    if qr:
        try:
            segno.make(url, error="l").terminal(out=sys.stdout, compact=True)
            sys.stdout.flush()
        except (UnicodeError, OSError):
            pass  # a terminal that cannot draw blocks: the URL is above


def exchange(conn, callback):
    """Trade the callback (URL, query, dict or bare api_key) for tokens; return the User.

    Raises:
        SignInError: the callback holds an error or no key, or the key was refused.
    """
    conn.run(conn.client.sign_in(callback))
    return conn.run(conn.client.user())


def login_with_listener(api_base, connect, open_browser, qr, timeout_s):
    """Sign in through a loopback listener.

    Args:
        api_base: the API to sign in to.
        connect: function(redirect_url) -> transport.Connection (not loading tokens).
    Returns:
        the signed-in User.
    """
    with CallbackListener() as listener:
        url = OtpSignIn(api_base, listener.redirect_url, otp_only=True).start_url()
        print_start(url, qr)
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
            with connect(listener.redirect_url) as conn:
                user = exchange(conn, params)
        except ToneError as error:
            listener.finish(False, str(error))
            raise
        listener.finish(True, user.username)
        return user


def login_with_paste(api_base, connect, qr, read_line=None):
    """Sign in by pasting the redirected address (or the bare api_key).

    Args:
        read_line: function() -> a line, "" at end of input (default: stdin).

    Returns:
        the signed-in User.
    """
    url = OtpSignIn(api_base, PASTE_REDIRECT_URL, otp_only=True).start_url()
    print_start(url, qr)
    click.echo("After entering the code, the browser goes to an address starting with")
    click.echo("  %s?api_key=...  (it will not load; that is expected)." % PASTE_REDIRECT_URL)
    click.echo("Paste that whole address (or just the api_key) here: ", nl=False)
    line = (read_line or sys.stdin.readline)()
    if not line:
        click.echo("")
        raise SignInError("no address was pasted (end of input); sign-in cancelled")
    line = line.strip()
    if not line:
        raise SignInError("nothing was pasted; sign-in cancelled")
    with connect(PASTE_REDIRECT_URL) as conn:
        return exchange(conn, line)
