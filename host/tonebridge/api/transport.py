"""The host's adapter for tonecore: performs the core's steps over HTTP.

    HttpxDriver(Driver)    sends Requests (no automatic redirects: the core applies its
                           own policy), sleeps, persists tokens to a TokenStore, streams
                           download bodies into a sink as they arrive, and lets many
                           threads share one Client: the core's generators run under a
                           Condition, and a caller told to Wait sleeps on it until the
                           refresh in flight is over.
    Connection             a Client and its driver for one API base, tokens loaded from
                           (and saved to) the store.

One seam, two stacks.  Every request goes through `HttpxDriver.send`, and every
response it returns is a tonecore Response whose streamed body is read with
`chunks()`.  API calls use httpx.  A streamed download GET with no proxy in the way
uses http.client instead, reading the body with `readinto` straight from the socket
into one 256 KiB buffer: httpx (h11) parses a body 64 KiB at a time in Python, and the
fast path made a 20 MB download about 1.4x faster (`make bench`: 210-240 -> 280-345
MB/s on loopback), which is why a second stack exists at all.  Proxies, and a caller's
own httpx.Client (tests), always go through httpx.

Every exception of either stack is mapped here, once, by `network_error` to tonecore's
TransportError, TrustError or UsageError; nothing above this module sees them.
Messages never contain header values or query strings (they may hold secrets).
"""

import http.client
import socket
import ssl
import threading
import time
import urllib.request

import httpx

from tonebridge import __version__
from tonecore.auth import OtpSignIn
from tonecore.client import Client, Driver
from tonecore.errors import SignInRequired, TransportError, TrustError, UsageError
from tonecore.dialect import CURRENT, dialect_named
from tonecore.http import Response
from tonecore.oauth import DeviceSignIn, PkceSignIn
from tonecore.ratelimit import RateLimiter
from tonecore.session import Session
from tonecore.urls import split_url

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
USER_AGENT = "tonebridge/%s" % __version__
WAIT_SLICE_S = 1.0  # a waiter re-checks at least this often (robust to a lost notify)
BODY_BUFFER = 256 * 1024  # download bodies are read into one buffer of this size


def monotonic_ms():
    """The host's monotonic clock in milliseconds (the core's `clock_ms`)."""
    return int(time.monotonic() * 1000)


def redact(url):
    """`url` without its query string (signed URLs carry secrets there)."""
    text = str(url)
    return text.split("?", 1)[0] + ("?..." if "?" in text else "")


def origin_of(url):
    try:
        u = split_url(str(url))
    except UsageError:
        return redact(url)
    return "%s://%s" % (u.scheme, u.netloc)


def _reason(exc):
    """A short lower-case reason from an httpx/OS error, without errno noise."""
    text = str(exc).strip()
    while text.startswith("[Errno") and "]" in text:
        text = text[text.index("]") + 1 :].strip()
    if not text:
        cause = exc.__cause__ or exc.__context__
        if cause is not None and cause is not exc:
            return _reason(cause)
        return type(exc).__name__
    return text[:1].lower() + text[1:]


def _certificate_problem(exc):
    """The ssl certificate error behind `exc` (raised or chained), or None."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (ssl.SSLCertVerificationError, ssl.CertificateError)):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def trust_error(problem, url):
    reason = getattr(problem, "verify_message", None) or _reason(problem)
    return TrustError("refusing %s: its TLS certificate did not verify (%s)" % (origin_of(url), reason))


def network_error(exc, url, connected):
    """The tonecore error for an exception of either HTTP stack (httpx, or http.client and
    the socket under it) raised while talking to `url`: the one mapping of this module.

    Args:
        connected: whether the connection was established (a failure before it is
            "cannot reach", after it "the connection broke"); None: judge by the
            exception (httpx says which).
    """
    where = origin_of(url)
    problem = _certificate_problem(exc)
    if problem is not None:
        return trust_error(problem, url)
    if isinstance(exc, httpx.InvalidURL):
        return UsageError("bad URL %s: %s" % (redact(url), _reason(exc)))
    if isinstance(exc, httpx.UnsupportedProtocol):
        return UsageError("bad URL %s: use http:// or https://" % redact(url))
    if isinstance(exc, (httpx.ConnectTimeout, httpx.ConnectError)):
        connected = False
    elif isinstance(exc, (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
                          httpx.CloseError)):
        connected = True
    timed_out = isinstance(exc, (httpx.TimeoutException, socket.timeout, TimeoutError))
    if connected is False:
        if timed_out:
            return TransportError("cannot reach %s: timed out after %d s" % (where, CONNECT_TIMEOUT_S))
        return TransportError("cannot reach %s: %s" % (where, _reason(exc)))
    if timed_out:
        return TransportError("%s stopped answering (no data for %d s)" % (where, READ_TIMEOUT_S))
    if connected:
        return TransportError("the connection to %s broke: %s" % (where, _reason(exc)))
    return TransportError("network error talking to %s: %s" % (where, _reason(exc)))


class HttpxResponse(Response):
    """A tonecore Response backed by an httpx response (streamed when `stream` was set).

    Attributes:
        raw: the httpx.Response; for streamed responses read it with `iter_raw`.
    """

    def __init__(self, raw, body, url):
        headers = {}
        for name, value in raw.headers.multi_items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        super().__init__(raw.status_code, headers, body, url)
        self.raw = raw

    def chunks(self):
        """The streamed body, piece by piece as httpx reads it (at most 64 KiB each).

        No chunk_size: httpx would hold back up to a chunk and lose it on a cut.
        """
        pieces = self.raw.iter_raw()
        while True:
            try:
                yield next(pieces)
            except StopIteration:
                return
            except (httpx.HTTPError, OSError) as exc:
                raise network_error(exc, self.url, True) from None

    def close(self):
        self.raw.close()


class DirectResponse(Response):
    """A streamed download over http.client, read with `readinto` into our buffer.

    httpx (h11) parses a body 64 KiB at a time in Python; for the large model files
    this reads straight from the socket into one preallocated buffer instead, about
    1.4x faster on a fast link (`make bench`).  Used for streamed GETs when no proxy
    applies; everything else goes through httpx.
    """

    def __init__(self, conn, raw, url):
        headers = {}
        for name, value in raw.getheaders():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        super().__init__(raw.status, headers, None, url)
        self.conn = conn
        self.raw = raw
        self.received = 0

    def readinto(self, buffer):
        """Bytes read into `buffer` (0 at the end of the body).

        Raises:
            TransportError: the connection broke or stalled.
        """
        try:
            if self.raw.chunked:
                # http.client's chunked readinto drops what it read when the
                # connection breaks before the buffer is full; read1 never does.
                data = self.raw.read1(len(buffer))
                count = len(data)
                buffer[:count] = data
            else:  # Content-Length or read-to-close: a short read at a cut keeps its bytes
                count = self.raw.readinto(buffer)
        except http.client.IncompleteRead:
            length = self.header("content-length")
            expected = (", expected %s" % length.strip()) if length else ""
            raise TransportError("the connection to %s broke: the server closed it early: received %d bytes%s"
                                 % (origin_of(self.url), self.received, expected)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise network_error(exc, self.url, connected=True) from None
        self.received += count
        return count

    def chunks(self):
        """The body through one reused buffer: each chunk is a memoryview of it, valid
        until the next one (the sink consumes it during its call)."""
        view = memoryview(bytearray(BODY_BUFFER))  # per body: threads may download at once
        while True:
            count = self.readinto(view)
            if not count:
                return
            yield view[:count]

    def close(self):
        self.conn.close()


def stored_flow(api_base, profile):
    """The SignInFlow that refreshes a session signed in as `profile` says (the seed's
    OTP flow for an old session file or none).

    Raises:
        SignInRequired: an OAuth session saved without its client id.
    """
    if profile is None or profile.flow == "otp":
        return OtpSignIn(api_base, None)
    if not profile.client_id:
        raise SignInRequired("the saved session does not say which app (client id) it belongs to; "
                             "run `tonebridge login`")
    if profile.flow == "device":
        return DeviceSignIn(api_base, profile.client_id)
    return PkceSignIn(api_base, profile.client_id, None)


def _no_proxy_for(url):
    """True when no proxy setting applies to `url` (then http.client may go direct)."""
    proxies = urllib.request.getproxies()
    if not proxies:
        return True
    scheme = url.split(":", 1)[0].lower()
    if scheme not in proxies and "all" not in proxies:
        return True
    return bool(urllib.request.proxy_bypass(split_url(url).netloc))


class _SteppingCondition(threading.Condition):
    """A Condition whose every release (after a generator step) wakes the waiters."""

    def __exit__(self, *exc):
        self.notify_all()
        return super().__exit__(*exc)


class HttpxDriver(Driver):
    """Performs tonecore steps with httpx; one instance may serve many threads.

    Args:
        store: a TokenStore, or None to keep tokens in memory only.
        api_base: the API the tokens belong to (recorded with them in the store).
        http: an httpx.Client to use (default: a new one without automatic redirects).
    Attributes:
        slept_ms: total milliseconds slept for the core (pacing, Retry-After, backoff).
    """

    def __init__(self, store=None, api_base=None, http=None):
        self.store = store
        self.api_base = api_base
        self.http = http or httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            headers={"user-agent": USER_AGENT},
        )
        self.lock = _SteppingCondition()
        self.slept_ms = 0
        self.direct = http is None  # a caller's own httpx.Client (tests, proxies) is always used
        self._ssl = None

    def send(self, request):
        url = request.url
        if request.stream and request.method == "GET" and self.direct and _no_proxy_for(url):
            return self._send_direct(request)
        try:
            built = self.http.build_request(request.method, url, headers=request.headers, content=request.body)
            raw = self.http.send(built, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise network_error(exc, url, None) from None
        if request.stream:
            return HttpxResponse(raw, None, url)
        try:
            body = raw.read()
        except (httpx.HTTPError, OSError) as exc:
            raise network_error(exc, url, None) from None
        finally:
            raw.close()
        return HttpxResponse(raw, body, url)

    def _send_direct(self, request):
        """Open a streamed GET with http.client; the body is read by `stream_body`."""
        url = request.url
        parts = split_url(url)  # UsageError for anything but an absolute http(s) URL
        if parts.scheme == "https":
            with self.lock:
                if self._ssl is None:
                    self._ssl = httpx.create_ssl_context()  # the same trust store as httpx
            conn = http.client.HTTPSConnection(parts.host, parts.port, timeout=CONNECT_TIMEOUT_S, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(parts.host, parts.port, timeout=CONNECT_TIMEOUT_S)
        headers = {"user-agent": USER_AGENT, "connection": "close"}
        headers.update(request.headers)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise network_error(exc, url, connected=False) from None
        try:
            conn.sock.settimeout(READ_TIMEOUT_S)
            conn.request("GET", parts.target, headers=headers)
            raw = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise network_error(exc, url, connected=True) from None
        return DirectResponse(conn, raw, url)

    def sleep_ms(self, ms):
        if ms > 0:
            self.slept_ms += ms
            time.sleep(ms / 1000.0)

    def persist(self, tokens):
        if self.store is None:
            return
        if tokens is None:
            self.store.delete(self.api_base)
        else:
            self.store.save(self.api_base, tokens, monotonic_ms(), time.time())

    def stream_body(self, step):
        """Copy the body into `step.sink` chunk by chunk (memory does not grow with size).

        The sink needs `write(chunk)` and `truncate()` (empty it and write from 0 again);
        a plain binary file object works too.  A chunk may be a memoryview of a reused
        buffer: the sink must consume it during the call, not keep it.  A failing sink
        (disk full) raises its own OSError: not a network failure, so the core does
        not retry it.
        """
        response = step.response
        sink = step.sink
        try:
            if step.restart:
                _empty(sink)
            for chunk in response.chunks():
                sink.write(chunk)
                step.plan.feed(chunk)
            step.plan.body_ended()
        finally:
            response.close()

    def wait_for_refresh(self, session):
        with self.lock:
            self.lock.wait_for(lambda: not session.refreshing, WAIT_SLICE_S)

    def close(self):
        self.http.close()


def _empty(sink):
    """Empty a sink before a restarted body: a file is truncated to 0, else `truncate()`."""
    if hasattr(sink, "seek"):
        sink.seek(0)
        sink.truncate(0)
    else:
        sink.truncate()


class Connection:
    """A tonecore Client for one API base, driven by an HttpxDriver, tokens in a store.

    Args:
        api_base: e.g. "https://www.tone3000.com/api/v1".
        store: a TokenStore (None: nothing is loaded or saved).
        flow: the SignInFlow to sign in with (login); None: the flow the stored
            session was made with (it builds the refresh requests).
        limiter: a RateLimiter; default one of 100 requests/minute; False for none.
        http: an httpx.Client to use instead of the default one.
        load_tokens: False to start signed out (to sign in) whatever the store holds.
    Raises:
        SignInRequired: the store holds a damaged session or one for another API.
    """

    def __init__(self, api_base, store=None, flow=None, limiter=None, http=None, load_tokens=True):
        self.api_base = api_base
        self.store = store
        tokens = None
        if store is not None and load_tokens:
            tokens = store.load(api_base, monotonic_ms(), time.time())
        profile = store.profile if store is not None else None
        if flow is None:
            flow = stored_flow(api_base, profile)
        if limiter is None:
            limiter = RateLimiter()
        dialect = dialect_named(profile.dialect) if profile is not None else CURRENT
        self.client = Client(api_base, Session(flow, tokens), monotonic_ms, limiter or None, dialect)
        self.driver = HttpxDriver(store, api_base, http)

    @property
    def session(self):
        return self.client.session

    def run(self, call):
        """Drive one call generator of `self.client` to its result."""
        return self.driver.run(call)

    def close(self):
        self.driver.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
