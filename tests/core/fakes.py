"""In-memory stand-ins for core tests on both runtimes: a clock, a tiny TONE3000 and a driver.

The real emulator (a real ASGI server) is used by host tests; these fakes let the core's
policy be checked without sockets, under MicroPython too.
"""

from tonecore.auth import OtpSignIn
from tonecore.client import Client, Driver
from tonecore.dialect import V1
from tonecore.compat import hexlify, json, sha256
from tonecore.errors import TransportError
from tonecore.http import Response
from tonecore.session import Session
from tonecore.urls import parse_query, split_url

API = "https://api.example/api/v1"


class Clock:
    def __init__(self, now_ms=1000000):
        self.now_ms = now_ms

    def __call__(self):
        return self.now_ms

    def advance(self, ms):
        self.now_ms += ms


def json_response(status, data, headers=None, url=None):
    hdrs = {"content-type": "application/json"}
    if headers:
        hdrs.update(headers)
    return Response(status, hdrs, json.dumps(data).encode(), url)


class FakeApi:
    """A TONE3000 in memory: sessions, rotation, pagination, downloads with faults."""

    def __init__(self, clock, ttl_s=3600, favorites=25):
        self.clock = clock
        self.ttl_s = ttl_s
        self.counter = 0
        self.api_keys = {"KEY1": "demo"}
        self.access = {}  # token -> expiry ms
        self.refresh = {}  # refresh -> access
        self.rotate = True
        self.log = []  # (method, path, authorization or None)
        self.refresh_calls = 0
        self.favorites = favorites  # how many; tone i is generated on demand (small heap)
        self.include_totals = True
        self.files = {}  # path -> bytes
        self.range_support = True
        self.cuts = []  # body byte offsets at which successive downloads are cut
        self.reject_all_tokens = False
        self.fail_refresh = False
        self.queued = []  # responses to return before normal handling

    def _new_session(self):
        self.counter += 1
        access = "acc%d" % self.counter
        refresh = "ref%d" % self.counter
        self.access[access] = self.clock() + self.ttl_s * 1000
        self.refresh[refresh] = access
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.ttl_s, "token_type": "bearer"}

    def handle(self, request):
        url = split_url(request.url)
        self.log.append((request.method, url.path, request.headers.get("authorization")))
        if self.queued:
            return self.queued.pop(0)
        body = json.loads(request.body) if request.body else {}
        if url.path == "/api/v1/auth/session":
            if self.api_keys.pop(body.get("api_key"), None) is None:
                return json_response(401, {"error": "invalid_api_key", "message": "api key invalid or used"})
            return json_response(200, self._new_session())
        if url.path == "/api/v1/auth/session/refresh":
            self.refresh_calls += 1
            old_access = self.refresh.get(body.get("refresh_token"))
            if self.fail_refresh or old_access is None or old_access != body.get("access_token"):
                return json_response(401, {"error": "invalid_refresh_token"})
            if self.rotate:
                del self.refresh[body["refresh_token"]]
                self.access.pop(old_access, None)
            return json_response(200, self._new_session())
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if url.path.startswith("/files/"):
            return self._file(request, url)
        if self.reject_all_tokens or token not in self.access or self.access[token] <= self.clock():
            return json_response(401, {"error": "unauthorized"}, {"www-authenticate": "Bearer"})
        if url.path == "/api/v1/user":
            return json_response(200, {"id": "u1", "username": "demo", "avatar_url": None, "url": "https://x/u/demo"})
        if url.path == "/api/v1/tones/favorited":
            q = parse_query(url.query)
            page = int(q.get("page", "1"))
            size = int(q.get("pageSize", "10"))
            ids = range((page - 1) * size + 1, min(page * size, self.favorites) + 1)
            items = [{"id": i, "title": "Tone %d" % i, "platform": "nam"} for i in ids]
            data = {"data": items, "page": page, "pageSize": size}
            if self.include_totals:
                data["total"] = self.favorites
                data["totalPages"] = (self.favorites + size - 1) // size
            return json_response(200, data)
        return json_response(404, {"error": "not_found", "message": "no such thing"})

    def _file(self, request, url):
        data = self.files.get(url.path)
        if data is None:
            return json_response(404, {"error": "not_found"})
        start = 0
        status = 200
        headers = {"content-type": "application/octet-stream", "etag": '"v1"'}
        rng = request.headers.get("range")
        if rng and self.range_support:
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                return Response(416, {"content-range": "bytes */%d" % len(data)}, b"", request.url)
            status = 206
            headers["content-range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = memoryview(data)[start:]  # no copy: the heap is small
        headers["content-length"] = str(len(body))
        cut = self.cuts.pop(0) if self.cuts else None
        return StreamResponse(status, headers, body, request.url, cut)


class StreamResponse(Response):
    """A streamed body delivered in chunks, optionally cut after `cut` bytes."""

    def __init__(self, status, headers, data, url, cut=None, chunk=1000):
        super().__init__(status, headers, None, url)
        self.data = data
        self.cut = cut
        self.chunk = chunk
        self.closed = False

    def chunks(self):
        end = len(self.data) if self.cut is None else min(self.cut, len(self.data))
        for at in range(0, end, self.chunk):
            yield self.data[at : min(at + self.chunk, end)]
        if self.cut is not None and self.cut < len(self.data):
            raise TransportError("connection reset by peer")

    def close(self):
        self.closed = True


class MemorySink:
    """A sink that keeps only a running SHA-256 and size, like flash would (small heap)."""

    def __init__(self, data=b""):
        self.truncations = 0
        self._reset()
        self.write(data)

    def _reset(self):
        self._hash = sha256()
        self.size = 0

    def truncate(self):
        self._reset()
        self.truncations += 1

    def write(self, chunk):
        self._hash.update(chunk)
        self.size += len(chunk)

    def digest(self):
        return hexlify(self._hash.digest())


class FakeDriver(Driver):
    """Sends to a handler function, records sleeps and persisted tokens, never waits."""

    def __init__(self, handler, clock=None):
        self.handler = handler
        self.clock = clock
        self.slept = []
        self.events = []  # ("persist", refresh_token|None) and ("send", path, authorization)

    def send(self, request):
        self.events.append(("send", split_url(request.url).path, request.headers.get("authorization")))
        return self.handler(request)

    def sleep_ms(self, ms):
        self.slept.append(ms)
        if self.clock is not None:
            self.clock.advance(ms)

    def persist(self, tokens):
        self.events.append(("persist", tokens.refresh_token if tokens else None))

    def stream_body(self, step):
        if step.restart:
            step.sink.truncate()
        try:
            for chunk in step.response.chunks():
                step.sink.write(chunk)
                step.plan.feed(chunk)
            step.plan.body_ended()
        finally:
            step.response.close()


def signed_in(ttl_s=3600, **api_options):
    """(clock, api, client, driver) with the demo user signed in through the OTP flow."""
    clock = Clock()
    api = FakeApi(clock, ttl_s, api_options.pop("favorites", 25))
    for name in api_options:
        setattr(api, name, api_options[name])
    flow = OtpSignIn(API, "http://127.0.0.1:8000/callback")
    client = Client(API, Session(flow), clock, dialect=V1)  # FakeApi is the seed's API v1
    driver = FakeDriver(api.handle, clock)
    driver.run(client.sign_in("http://127.0.0.1:8000/callback?api_key=KEY1"))
    return clock, api, client, driver
