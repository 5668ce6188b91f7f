"""Helpers for the host CLI tests: signing in through the emulator, and a raw HTTP server.

Signing in plays the user's browser against the emulator's real HTML pages with httpx
(`tonebridge.dev.phone`): open the OTP-only sign-in URL, submit the email, read the 6-digit
code from the emulator's outbox, submit it, and follow the redirect to the app's
redirect_url (the CLI's loopback listener) - or stop at the redirect to read `api_key`.

`RawServer` is a few lines of socket code for faults a well-behaved server never
produces (a Content-Length that lies, a body longer than announced).
"""

import socket
import threading
import time

import httpx

from tonebridge.dev import phone
from tonebridge.api.token_store import Profile, TokenStore
from tonebridge.api.transport import Connection
from tonecore.auth import OtpSignIn, api_key_from_callback

EMAIL = "demo@example.com"
PLACEHOLDER_REDIRECT = "http://127.0.0.1:9/callback"  # never contacted


def api_of(base_url):
    """The API base of an emulator origin."""
    return base_url.rstrip("/") + "/api/v1"


def browser_sign_in(start_url, base_url, email=EMAIL, follow_to_callback=True):
    """Complete the sign-in page at `start_url` as a person would.

    Returns:
        the httpx.Response the browser ends on (the callback page), or with
        `follow_to_callback` False the redirect carrying api_key.
    """
    return phone.sign_in(start_url, email, phone.outbox_code(base_url, email), follow_to_callback=follow_to_callback)


def fetch_api_key(base_url, email=EMAIL, redirect_url=PLACEHOLDER_REDIRECT):
    """A fresh, unused api_key for `email` (the redirect is read, not followed)."""
    start = OtpSignIn(api_of(base_url), redirect_url, otp_only=True).start_url()
    redirect = browser_sign_in(start, base_url, email, follow_to_callback=False)
    return api_key_from_callback(redirect.headers["location"])


def redirect_location(base_url, redirect_url, email=EMAIL):
    """The full callback URL (with api_key) the browser would be sent to."""
    start = OtpSignIn(api_of(base_url), redirect_url, otp_only=True).start_url()
    return browser_sign_in(start, base_url, email, follow_to_callback=False).headers["location"]


def sign_in_home(base_url, home, email=EMAIL, dialect="v1"):
    """Sign the CLI in for `home` (writes session.json) without a browser round trip:
    the seed's api_key flow (the emulator serves it in both dialects), the session then
    spoken in `dialect`.

    Returns:
        the stored Tokens.
    """
    store = TokenStore(str(home))
    store.profile = Profile("otp", None, dialect)
    with Connection(api_of(base_url), store, OtpSignIn(api_of(base_url), PLACEHOLDER_REDIRECT), load_tokens=False) as conn:
        return conn.run(conn.client.sign_in(fetch_api_key(base_url, email)))


def configure(base_url, **changes):
    """Change the emulator's runtime configuration."""
    response = httpx.post(base_url + "/_emulator/config", json=changes, timeout=5)
    response.raise_for_status()
    return response


def request_log(base_url):
    """The emulator's request log (list of dicts)."""
    return httpx.get(base_url + "/_emulator/requests", timeout=5).json()


def model_info(base_url, model_id):
    """{size, sha256} of a model file as the emulator serves it."""
    return httpx.get("%s/_emulator/models/%d" % (base_url, model_id), timeout=5).json()


def wait_until(predicate, timeout_s=10.0, what="a condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for %s" % what)


class RawRequest:
    def __init__(self, method, target, headers):
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.headers = headers


class RawServer:
    """An HTTP/1.x server on a real loopback socket, one response per connection.

    Args:
        respond: function(RawRequest) -> bytes, the raw response to send (status
            line, headers, body); the connection is closed after it.
        tls: a server-side ssl.SSLContext to speak https (base_url then names `host`).
        host: the name in base_url (the socket listens on 127.0.0.1 either way).
    Attributes:
        base_url: "http://127.0.0.1:<port>" (or https://<host>:<port>).
        requests: every RawRequest received.
    """

    def __init__(self, respond, tls=None, host="127.0.0.1"):
        self.respond = respond
        self.tls = tls
        self.requests = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.base_url = "%s://%s:%d" % ("https" if tls else "http", host, self.sock.getsockname()[1])
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        try:  # wake the accept() so the thread sees _stop
            socket.create_connection(self.sock.getsockname(), 1).close()
        except OSError:
            pass
        self._thread.join(2)
        self.sock.close()
        return False

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
                method, target = head[0].split(" ")[:2]
                headers = {}
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                request = RawRequest(method, target, headers)
                self.requests.append(request)
                conn.sendall(self.respond(request))
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def raw_response(status, headers, body=b""):
    """Bytes of an HTTP/1.1 response with exactly the given headers (nothing added)."""
    reasons = {200: "OK", 206: "Partial Content", 404: "Not Found", 416: "Range Not Satisfiable"}
    lines = ["HTTP/1.1 %d %s" % (status, reasons.get(status, "Status"))]
    lines += ["%s: %s" % item for item in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
