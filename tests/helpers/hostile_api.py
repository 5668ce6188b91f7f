"""A TONE3000 API that misbehaves on purpose, for tests/host/test_hostile_api.py and
tests/pedal/test_pedal_hostile_api.py.

`HostileApi` speaks enough of today's dialect (snake_case pages, `tone_id`) to walk a
client - the `tonebridge` CLI or the simulated pedal's sync - to its hostile part:

    GET /api/v1/user                     a user
    GET /api/v1/tones/favorited          one NAM tone (API modes misbehave here)
    GET /api/v1/tones/created|downloaded no tones
    GET /api/v1/models?tone_id=1         its models (A1; `architecture=2`: none)
    GET /files/<name>                    a real NAM file ("-file" modes misbehave here)

Tokens are not checked (the tests write a session beforehand and count where the token
went).  It is raw sockets, one response per connection (`Connection: close`), so that it
can send what no HTTP library would: see MODES.  Every request is recorded in
`requests` with the listener that took it:

    "api"      the API's own origin (https when `tls` is given)
    "plain"    plain http on the API's host and port: a `model_url` with the http scheme
               while the API is https (the first byte is not a TLS handshake)
    "foreign"  a second listener on another port: another origin, such as file storage

None but "api" may ever see an Authorization header.
"""

import json
import socket
import ssl
import threading
import time
import urllib.parse

TONE_ID = 1
MODEL_ID = 7
TOKEN = "ACCESS-SECRET"  # what the tests store as the session's access token
MARKUP_TITLE = "[bold red]pwned[/] \x1b]0;pwned\x07 <script>alert(1)</script>"
MARKUP_USER = "[link=http://evil.example]me[/link]\x1b[2J\x07"
ESCAPE_MESSAGE = "\x1b]0;pwned\x07[bold red]denied[/] <b>"
CONTROL = ("\x1b", "\x07")  # must never reach a terminal

# mode -> what it does.  API modes act on GET /api/v1/tones/favorited, "-file" modes on
# the model file, the others on the listings.
MODES = {
    "foreign-url": "model_url on another origin (the foreign listener)",
    "http-url": "model_url with http:// on the API's own host and port while the API is https",
    "deep-json": "a tones page nested 4000 deep (8 KB)",
    "huge-header": "a response head with a 1 MB header line",
    "many-headers": "a response head with 4000 headers",
    "huge-line": "a chunked tones page whose chunk-size line is 1 MB",
    "endless-chunked": "a chunked tones page that never ends",
    "drip": "a tones page announced as 4000 bytes, sent one byte every `drip_s`",
    "endless-trailers": "a chunked tones page, then trailer lines without end",
    "retry-after-nan": "429 with Retry-After: nan on the tones page",
    "error-escape": "403 whose message holds a terminal escape and rich markup",
    "markup": "markup and terminal escapes in the tone's title, the user name and the model's name",
    "dangerous-names": "model files named ../../x.nam, .zshenv, with escapes, NUL, ..",
    "huge-line-file": "the model file chunked with a 1 MB chunk-size line",
    "endless-chunked-file": "the model file chunked and never ending",
    "drip-file": "the model file announced as 1 MB, sent one byte every `drip_s`",
    "drip-head-file": "the model file's response head, one byte every `drip_s`",
    "endless-trailers-file": "the model file chunked, then trailer lines without end",
}
DANGEROUS_NAMES = {  # model id -> the file name at the end of its model_url (URL-encoded)
    7: "..%2F..%2Fx.nam",
    8: ".zshenv",
    9: "a%1B%5D0%3Bpwned%07.nam",
    10: "%2E%2E",
    11: "x%00y.nam",
    12: "..%5C..%5Cwin.nam",
}
STAMP = "2024-05-01T10:00:00Z"


_FILE = []


def model_file():
    """A real NAM file (the emulator's nano WaveNet, ~19 KB): what a good server sends."""
    if _FILE:
        return _FILE[0]
    from tonebridge.dev.emulator.catalogue import Catalogue
    from tonebridge.dev.emulator.config import DEFAULT_SEED
    from tonebridge.dev.emulator.model_files import FileStore

    catalogue = Catalogue(DEFAULT_SEED)
    nano = min((m for m in catalogue.models.values() if m.platform == "nam" and m.size == "nano"),
               key=lambda m: m.id)
    _FILE.append(FileStore(catalogue).get(nano).data)
    return _FILE[0]


def head(status, headers, reason="Status"):
    lines = ["HTTP/1.1 %d %s" % (status, reason)] + ["%s: %s" % item for item in headers] + ["Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(status, value):
    body = json.dumps(value).encode()
    return head(status, [("Content-Type", "application/json"), ("Content-Length", len(body))]) + body


def page(items):
    return {"data": items, "page": 1, "page_size": 100, "total": len(items), "total_pages": 1}


class Request:
    def __init__(self, listener, method, target, headers):
        self.listener = listener
        self.method = method
        self.target = target
        self.path = urllib.parse.unquote(target.split("?", 1)[0])
        self.query = dict(urllib.parse.parse_qsl(target.split("?", 1)[1])) if "?" in target else {}
        self.headers = headers


class Listener:
    """A loopback TCP listener handing each connection to `handle(conn, label)` in a
    thread.  With `tls`, a connection whose first byte is a TLS handshake is wrapped and
    labelled `label`; any other is plain http, labelled "plain"."""

    def __init__(self, handle, label, tls=None):
        self.handle = handle
        self.label = label
        self.tls = tls
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            pass
        self.thread.join(2)
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.stopping:
                conn.close()
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        label = self.label
        try:
            conn.settimeout(5)
            if self.tls is not None:
                first = conn.recv(1, socket.MSG_PEEK)
                if first == b"\x16":
                    conn = self.tls.wrap_socket(conn, server_side=True)
                else:
                    label = "plain"
            self.handle(conn, label)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


class HostileApi:
    """The API (and a foreign origin), misbehaving as `mode` says (None: behaving).

    Args:
        mode: a key of MODES, or None; may be changed between requests.
        tls: a server-side ssl.SSLContext: the API is https://<host>:<port>.
        host: the name in the URLs ("localhost" for a certificate that names it).
        drip_s: seconds between the bytes of the drip modes.
    Attributes:
        version: goes into the models' `updated_at`: raise it and a pedal that holds
            them downloads them again.
        base_url, api: the origin, and the API base (base_url + "/api/v1").
        requests: every Request received, oldest first.
        sent: bytes sent by the endless modes (they stop when the client hangs up).
    """

    def __init__(self, mode=None, tls=None, host="127.0.0.1", drip_s=0.5):
        self.mode = mode
        self.drip_s = drip_s
        self.version = 0
        self.host = host
        self.file = model_file()
        self.requests = []
        self.sent = 0
        self._main = Listener(self._handle, "api", tls)
        self._foreign = Listener(self._handle, "foreign")
        self.base_url = "%s://%s:%d" % ("https" if tls else "http", host, self._main.port)
        self.plain_url = "http://%s:%d" % (host, self._main.port)
        self.foreign_url = "http://127.0.0.1:%d" % self._foreign.port
        self.api = self.base_url + "/api/v1"

    def __enter__(self):
        self._main.start()
        self._foreign.start()
        return self

    def __exit__(self, *exc):
        self._main.stop()
        self._foreign.stop()
        return False

    def stop_endless(self):
        """End the endless modes' loops (they also end when the client hangs up)."""
        self._main.stopping = self._foreign.stopping = True

    def authorized(self, listener):
        """The Authorization headers the `listener` ("api", "plain", "foreign") received."""
        return [r.headers["authorization"] for r in self.requests
                if r.listener == listener and "authorization" in r.headers]

    def requests_to(self, prefix):
        return [r for r in self.requests if r.path.startswith(prefix)]

    # -- serving ------------------------------------------------------------------------

    def _handle(self, conn, label):
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece or len(data) > 65536:
                return
            data += piece
        lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        request = Request(label, method, target, headers)
        self.requests.append(request)
        self._respond(conn, request)

    def _respond(self, conn, request):
        mode = self.mode
        path = request.path
        if path.startswith("/files/"):
            if mode and mode.endswith("-file"):
                return self._misbehave(conn, mode[:-len("-file")], self.file)
            return conn.sendall(head(200, [("Content-Type", "application/octet-stream"),
                                           ("Content-Length", len(self.file))], "OK") + self.file)
        if path == "/api/v1/user":
            return conn.sendall(json_response(200, self._user()))
        if path == "/api/v1/tones/favorited":
            if mode in ("deep-json", "huge-header", "many-headers", "huge-line", "endless-chunked", "drip",
                        "endless-trailers", "retry-after-nan", "error-escape"):
                return self._misbehave(conn, mode, json.dumps(page([self._tone()])).encode())
            return conn.sendall(json_response(200, page([self._tone()])))
        if path in ("/api/v1/tones/created", "/api/v1/tones/downloaded"):
            return conn.sendall(json_response(200, page([])))
        if path == "/api/v1/models":
            if request.query.get("architecture") == "2" or request.query.get("tone_id") != str(TONE_ID):
                return conn.sendall(json_response(200, page([])))
            return conn.sendall(json_response(200, page(self._models())))
        return conn.sendall(json_response(404, {"message": "not found"}))

    def _user(self):
        name = MARKUP_USER if self.mode == "markup" else "hostile_host"
        return {"id": "u-1", "username": name, "created_at": STAMP, "updated_at": STAMP}

    def _tone(self):
        title = MARKUP_TITLE if self.mode == "markup" else "A tone"
        return {"id": TONE_ID, "title": title, "format": "nam", "platform": "nam", "gear": "amp",
                "user": {"id": "u-1", "username": self._user()["username"]}, "user_id": "u-1",
                "sizes": ["nano"], "models_count": 1, "is_public": True, "created_at": STAMP, "updated_at": STAMP}

    def _models(self):
        if self.mode == "dangerous-names":
            return [self._model(model_id, self.base_url + "/files/" + name) for model_id, name in
                    sorted(DANGEROUS_NAMES.items())]
        if self.mode == "foreign-url":
            url = self.foreign_url + "/files/clean.nam"
        elif self.mode == "http-url":
            url = self.plain_url + "/files/clean.nam"
        elif self.mode == "markup":
            url = self.base_url + "/files/a%1B%5D0%3Bpwned%07%5Bbold%5D.nam"
        else:
            url = self.base_url + "/files/clean.nam"
        return [self._model(MODEL_ID, url)]

    def _model(self, model_id, url):
        name = MARKUP_TITLE if self.mode == "markup" else "Model %d" % model_id
        return {"id": model_id, "name": name, "model_url": url, "tone_id": TONE_ID, "size": "nano",
                "architecture_version": "1", "created_at": STAMP,
                "updated_at": "2024-05-01T10:%02d:%02dZ" % divmod(self.version % 3600, 60)}

    def _misbehave(self, conn, mode, body):
        """Send `body` (a JSON page or the model file) the way `mode` says."""
        if mode == "deep-json":
            deep = b"[" * 4000 + b"]" * 4000
            return conn.sendall(head(200, [("Content-Type", "application/json"), ("Content-Length", len(deep))])
                                + deep)
        if mode == "huge-header":
            return conn.sendall(head(200, [("X-Pad", "a" * 1000000), ("Content-Length", len(body))]) + body)
        if mode == "many-headers":
            return conn.sendall(head(200, [("X-H-%d" % i, "v") for i in range(4000)]
                                     + [("Content-Length", len(body))]) + body)
        if mode == "huge-line":
            return conn.sendall(head(200, [("Transfer-Encoding", "chunked")]) + b"%x;" % len(body)
                                + b"x" * 1000000 + b"\r\n" + body + b"\r\n0\r\n\r\n")
        if mode == "endless-chunked":
            conn.sendall(head(200, [("Transfer-Encoding", "chunked")]))
            piece = b"1000\r\n" + b" " * 4096 + b"\r\n"
            return self._flood(conn, b"%x\r\n%s\r\n" % (len(body[:10]), body[:10]), piece)
        if mode == "drip":  # announced small enough for a pedal's 8 KB API replies (a file: 1 MB)
            length = 1000000 if body is self.file else 4000
            conn.sendall(head(200, [("Content-Type", "application/json"), ("Content-Length", length)]))
            for i in range(length):
                if self._main.stopping:
                    return
                conn.sendall(body[i:i + 1] or b" ")
                self.sent += 1
                time.sleep(self.drip_s)
            return
        if mode == "drip-head":
            for byte in head(200, [("Content-Length", len(body))] + [("X-Slow-%d" % i, "v") for i in range(500)]):
                if self._main.stopping:
                    return
                conn.sendall(bytes([byte]))
                self.sent += 1
                time.sleep(self.drip_s)
            return conn.sendall(body)
        if mode == "endless-trailers":
            conn.sendall(head(200, [("Transfer-Encoding", "chunked")]))
            return self._flood(conn, b"%x\r\n%s\r\n0\r\n" % (len(body), body), b"X-Trailer: 1\r\n" * 64)
        if mode == "retry-after-nan":
            return conn.sendall(json_response(429, {"message": "slow down"}).replace(
                b"Connection: close", b"Retry-After: nan\r\nConnection: close"))
        if mode == "error-escape":
            return conn.sendall(json_response(403, {"message": ESCAPE_MESSAGE}))
        raise AssertionError("mode %r has no misbehaviour here" % mode)

    def _flood(self, conn, first, piece):
        """Send `first`, then `piece` again and again until the client hangs up (or stops
        reading for 5 s, or the server stops)."""
        conn.sendall(first)
        while not self._main.stopping:
            conn.sendall(piece)
            self.sent += len(piece)
