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

Limits, so that no server can hold a command or fill memory or disk (tests/host/
test_hostile_api.py plays such servers):

    MAX_JSON_BYTES       an API reply is read as a stream and refused past 4 MB
                         (ProtocolError naming the origin and the cap)
    REQUEST_DEADLINE_S   an API reply must be complete, and a download's head must have
                         arrived, within 60 s: a server dripping a byte at a time is
                         given up on (TransportError)
    MIN_BODY_BYTES / RATE_WINDOW_S
                         a download body bringing fewer than 32 KB in 30 s (about 1 KB/s)
                         is given up on ("sent too slowly"); the core resumes it once,
                         and a second slow body ends the download (DownloadError)
    MAX_LINE, MAX_TRAILERS, FRAMING_SLACK
                         a chunked download's size lines and trailers are bounded: an
                         endless trailer or chunk extension is a ProtocolError
    MAX_HEADERS          at most 100 header lines (http.client's own limit, applied to
                         httpx's responses too); a head line of at most 64 KB
                         (http.client), a head of at most 16 KB (httpx)

On the download path every read from the socket goes through a `Meter`, which shortens
the socket timeout to the next limit due, so the limits hold even inside http.client's
line reads; on the httpx path they are checked as each piece of body arrives (a read
waits at most READ_TIMEOUT_S).  The size of a download is capped by downloads.py
(tonecore.download.MAX_MODEL_FILE_BYTES), which owns the disk.

Every exception of either stack is mapped here, once, by `network_error` to tonecore's
TransportError, TrustError, ProtocolError or UsageError; nothing above this module sees
them.  Messages never contain header values or query strings (they may hold secrets).
"""

import http.client
import io
import socket
import ssl
import threading
import time
import urllib.request
import weakref

import httpx

from tonebridge import __version__
from tonecore.auth import OtpSignIn
from tonecore.client import Client, Driver
from tonecore.errors import DownloadError, ProtocolError, SignInRequired, TransportError, TrustError, UsageError
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
MAX_JSON_BYTES = 4 * 1024 * 1024  # an API reply past this is refused (a page of 100 tones is ~100 KB)
REQUEST_DEADLINE_S = 60.0  # an API reply, or a download's head, not complete by then is given up on
MIN_BODY_BYTES = 32 * 1024  # a download body bringing fewer bytes than this...
RATE_WINDOW_S = 30.0  # ...in a window of this many seconds was "sent too slowly"
MAX_SLOW_BODIES = 2  # slow bodies of one download before it is given up on (the first is resumed)
MAX_HEADERS = 100  # header lines in a response head (http.client's own limit, applied to httpx too)
MAX_LINE = 4096  # a chunk-size line (extensions included) or a trailer line of a download
MAX_TRAILERS = 32  # trailer lines after a chunked download's last chunk
FRAMING_SLACK = 64 * 1024  # chunk framing may exceed the data by this much, no more


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
    if isinstance(exc, http.client.HTTPException) and not isinstance(
            exc, (http.client.IncompleteRead, http.client.RemoteDisconnected)):
        # a head line too long, too many headers, a status line that is none
        return ProtocolError("%s sent a malformed response head (%s)" % (where, _reason(exc)[:80]))
    if isinstance(exc, httpx.RemoteProtocolError) and "buffer too long" in str(exc).lower():
        return ProtocolError("%s sent a response head or chunk line larger than 16 KB" % where)
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


class Meter:
    """The time limits of one response, checked as its bytes arrive.

    Until `body()` is called the deadline (`deadline_s` from the start) is the only
    limit; `body()` sets the body's own: a deadline (None: none) and a rate floor of
    `min_bytes` per `window_s` (None: none).

    Attributes:
        too_slow: the rate floor was what stopped the body.
    """

    def __init__(self, where, deadline_s, clock=time.monotonic):
        self.where = where
        self.clock = clock
        self.deadline_s = deadline_s
        self.deadline = clock() + deadline_s if deadline_s is not None else None
        self.min_bytes = None
        self.window_s = None
        self.window_end = None
        self.window_bytes = 0
        self.in_body = False
        self.too_slow = False
        self._waiting_for = None  # the limit `timeout()` last shortened the wait for

    def body(self, deadline_s=None, min_bytes=None, window_s=None):
        """The head of a streamed body is in: from now on the body's limits apply."""
        now = self.clock()
        self.in_body = True
        self.deadline_s = deadline_s
        self.deadline = now + deadline_s if deadline_s is not None else None
        self.min_bytes = min_bytes
        self.window_s = window_s
        self.window_end = now + window_s if min_bytes and window_s else None
        self.window_bytes = 0

    def reply_body(self):
        """The head of an API reply is in: its body is under the same deadline."""
        self.in_body = True

    def _late(self):
        if self.in_body:
            return TransportError("%s did not send a complete reply within %d s" % (self.where, self.deadline_s))
        return TransportError("%s did not answer within %d s" % (self.where, self.deadline_s))

    def _slow(self):
        self.too_slow = True
        return TransportError("%s sent too slowly (fewer than %d bytes in %d s)"
                              % (self.where, self.min_bytes, self.window_s))

    def timeout(self):
        """Seconds the next read may wait: READ_TIMEOUT_S, or less when a limit falls
        due sooner.

        Raises:
            TransportError: a limit has passed.
        """
        now = self.clock()
        wait = READ_TIMEOUT_S
        self._waiting_for = None
        if self.deadline is not None:
            left = self.deadline - now
            if left <= 0:
                raise self._late()
            if left < wait:
                wait, self._waiting_for = left, self._late
        if self.window_end is not None and self.window_bytes < self.min_bytes:
            left = self.window_end - now
            if left <= 0:
                raise self._slow()
            if left < wait:
                wait, self._waiting_for = left, self._slow
        return wait

    def timed_out(self):
        """The error for a read that waited `timeout()` seconds in vain."""
        if self._waiting_for is not None:
            return self._waiting_for()
        return TransportError("%s stopped answering (no data for %d s)" % (self.where, READ_TIMEOUT_S))

    def arrived(self, count):
        """`count` more bytes came in.

        Raises:
            TransportError: the deadline passed, or a rate window ended short.
        """
        now = self.clock()
        if self.deadline is not None and now >= self.deadline:
            raise self._late()
        if self.window_end is not None:
            self.window_bytes += count
            if now >= self.window_end:
                if self.window_bytes < self.min_bytes:
                    raise self._slow()
                self.window_end = now + self.window_s
                self.window_bytes = 0


class _MeteredReader(io.RawIOBase):
    """A socket's raw reader whose every read waits only as long as its Meter allows."""

    def __init__(self, sock, meter):
        self.sock = sock
        self.raw = sock.makefile("rb", buffering=0)  # it keeps the socket open until closed
        self.meter = meter

    def readable(self):
        return True

    def readinto(self, buffer):
        self.sock.settimeout(self.meter.timeout())
        try:
            count = self.raw.readinto(buffer)
        except socket.timeout:
            raise self.meter.timed_out() from None
        if count:
            self.meter.arrived(count)
        return count

    def close(self):
        if not self.closed:
            self.raw.close()
        super().close()


class _MeteredSocket:
    """What http.client's response reads its socket through: `makefile` gives a
    buffered reader over a _MeteredReader."""

    def __init__(self, sock, meter):
        self.sock = sock
        self.meter = meter

    def makefile(self, mode="rb"):
        return io.BufferedReader(_MeteredReader(self.sock, self.meter))


class HttpxResponse(Response):
    """A tonecore Response backed by an httpx response (streamed when `stream` was set).

    Attributes:
        raw: the httpx.Response; for streamed responses read it with `iter_raw`.
        meter: the Meter its streamed body is checked against, or None.
    """

    def __init__(self, raw, body, url, meter=None):
        headers = {}
        for name, value in raw.headers.multi_items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        super().__init__(raw.status_code, headers, body, url)
        self.raw = raw
        self.meter = meter

    @property
    def too_slow(self):
        return self.meter is not None and self.meter.too_slow

    def chunks(self):
        """The streamed body, piece by piece as httpx reads it (at most 64 KiB each).

        No chunk_size: httpx would hold back up to a chunk and lose it on a cut.
        """
        pieces = self.raw.iter_raw()
        while True:
            try:
                piece = next(pieces)
            except StopIteration:
                return
            except (httpx.HTTPError, OSError) as exc:
                raise network_error(exc, self.url, True) from None
            if self.meter is not None:
                self.meter.arrived(len(piece))
            yield piece

    def close(self):
        self.raw.close()


class DirectResponse(Response):
    """A streamed download over http.client, read with `readinto` into our buffer.

    httpx (h11) parses a body 64 KiB at a time in Python; for the large model files
    this reads straight from the socket into one preallocated buffer instead, about
    1.4x faster on a fast link (`make bench`).  Used for streamed GETs when no proxy
    applies; everything else goes through httpx.

    http.client parses the head; the body's framing (Content-Length, chunked, to the
    close) is read here, with `readinto1` (one socket read at most, so the Meter sees
    every piece as it arrives) and with bounded chunk lines and trailers.
    """

    def __init__(self, conn, raw, url, meter):
        headers = {}
        for name, value in raw.getheaders():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        super().__init__(raw.status, headers, None, url)
        self.conn = conn
        self.raw = raw
        self.meter = meter
        self.fp = raw.fp
        self.chunked = raw.chunked
        self.left = raw.length  # Content-Length bytes still to come; None: chunked or to the close
        self.done = raw.length == 0
        self.chunk_left = 0
        self.chunks_seen = 0
        self.framing = 0  # bytes of chunk-size lines, CRLFs and trailers
        self.received = 0

    @property
    def too_slow(self):
        return self.meter.too_slow

    def readinto(self, buffer):
        """Bytes read into `buffer` (0 at the end of the body).

        Raises:
            TransportError: the connection broke, stalled or was too slow.
            ProtocolError: a malformed or endless chunked framing.
        """
        if self.done:
            return 0
        try:
            if self.chunked:
                count = self._chunk_into(buffer)
            else:
                view = buffer if self.left is None or self.left >= len(buffer) else buffer[:self.left]
                count = self.fp.readinto1(view)
                if self.left is not None:
                    self.left -= count
                # the end: the close, or all of Content-Length (a close before it: the
                # plan's body_ended says how early)
                self.done = not count or self.left == 0
        except (OSError, http.client.HTTPException) as exc:
            raise network_error(exc, self.url, connected=True) from None
        self.received += count
        return count

    def _cut(self):
        return TransportError("the connection to %s broke: the server closed it early: received %d bytes"
                              % (origin_of(self.url), self.received))

    def _chunk_into(self, buffer):
        while not self.chunk_left:
            if self.chunks_seen and self._line() != b"":  # the CRLF after a chunk's data
                raise ProtocolError("%s sent a malformed chunked body" % origin_of(self.url))
            size = self._line().split(b";", 1)[0].strip()
            if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError("%s sent a malformed chunked body" % origin_of(self.url))
            self.chunks_seen += 1
            self.chunk_left = int(size, 16)
            if not self.chunk_left:
                self._trailers()
                self.done = True
                return 0
        view = buffer if self.chunk_left >= len(buffer) else buffer[:self.chunk_left]
        count = self.fp.readinto1(view)
        if not count:
            raise self._cut()
        self.chunk_left -= count
        return count

    def _trailers(self):
        for _ in range(MAX_TRAILERS + 1):
            if not self._line(at_end=True):
                return
        raise ProtocolError("%s sent more than %d trailer lines after a chunked body"
                            % (origin_of(self.url), MAX_TRAILERS))

    def _line(self, at_end=False):
        """One line of chunk framing without its CRLF (b"" at the end of the stream
        when `at_end`: the last CRLF is often missing)."""
        line = self.fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError("%s sent a chunked body with a line longer than %d bytes"
                                % (origin_of(self.url), MAX_LINE))
        if not line.endswith(b"\n"):
            if at_end and not line:
                return b""
            raise self._cut()
        self.framing += len(line)
        if self.framing > self.received + FRAMING_SLACK:
            raise ProtocolError("%s sent more chunk framing than data" % origin_of(self.url))
        return line.rstrip(b"\r\n")

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
        self.raw.close()  # the socket itself: the connection handed it to the response
        self.conn.close()


def read_json_body(raw, url, meter, limit=None):
    """The whole body of an httpx response (an API reply), read as it arrives.

    Raises:
        ProtocolError: larger than `limit` (announced or counted).
        TransportError: the connection broke, or the reply was not complete by the
            Meter's deadline.
    """
    where = origin_of(url)
    limit = limit or MAX_JSON_BYTES
    too_large = ProtocolError("%s sent a reply larger than %d MB, the most an API reply may be; refused"
                              % (where, limit // (1024 * 1024)))
    length = raw.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    try:
        for piece in raw.iter_bytes():
            body += piece
            if len(body) > limit:
                raise too_large
            meter.arrived(len(piece))
    except (httpx.HTTPError, OSError) as exc:
        raise network_error(exc, url, True) from None
    return bytes(body)


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
        self._slow_lock = threading.Lock()
        self._slow_bodies = weakref.WeakKeyDictionary()  # download plan -> bodies sent too slowly

    def send(self, request):
        url = request.url
        if request.stream and request.method == "GET" and self.direct and _no_proxy_for(url):
            return self._send_direct(request)
        meter = Meter(origin_of(url), REQUEST_DEADLINE_S)
        try:
            built = self.http.build_request(request.method, url, headers=request.headers, content=request.body)
            raw = self.http.send(built, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise network_error(exc, url, None) from None
        if len(raw.headers.raw) > MAX_HEADERS:
            raw.close()
            raise ProtocolError("%s sent a response head with more than %d headers" % (origin_of(url), MAX_HEADERS))
        if request.stream:
            meter.body(None, MIN_BODY_BYTES, RATE_WINDOW_S)
            return HttpxResponse(raw, None, url, meter)
        try:
            meter.arrived(0)  # the head came after the deadline: so does the reply
            meter.reply_body()
            body = read_json_body(raw, url, meter)
        finally:
            raw.close()
        return HttpxResponse(raw, body, url)

    def _send_direct(self, request):
        """Open a streamed GET with http.client; the body is read by `stream_body`.

        Every read of the socket goes through a Meter: the head must be in within
        REQUEST_DEADLINE_S, the body must keep up MIN_BODY_BYTES per RATE_WINDOW_S.
        """
        url = request.url
        parts = split_url(url)  # UsageError for anything but an absolute http(s) URL
        if parts.scheme == "https":
            with self.lock:
                if self._ssl is None:
                    self._ssl = httpx.create_ssl_context()  # the same trust store as httpx
            conn = http.client.HTTPSConnection(parts.host, parts.port, timeout=CONNECT_TIMEOUT_S, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(parts.host, parts.port, timeout=CONNECT_TIMEOUT_S)
        meter = Meter(origin_of(url), REQUEST_DEADLINE_S)
        conn.response_class = lambda sock, *args, **kwargs: http.client.HTTPResponse(
            _MeteredSocket(sock, meter), *args, **kwargs)
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
        except BaseException:  # a Meter's limit (TransportError), Ctrl-C
            conn.close()
            raise
        meter.body(None, MIN_BODY_BYTES, RATE_WINDOW_S)
        return DirectResponse(conn, raw, url, meter)

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

        A body sent too slowly is a TransportError, which the core resumes; the
        MAX_SLOW_BODIES-th slow body of the same download is a DownloadError instead (a
        server that drips would otherwise be resumed forever: each drip is progress).
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
        except TransportError as error:
            if getattr(response, "too_slow", False) and self._slow_again(step.plan):
                raise DownloadError("%s: %s, %d times; gave up" % (step.plan.filename, error, MAX_SLOW_BODIES)) \
                    from None
            raise
        finally:
            response.close()

    def _slow_again(self, plan):
        """Count a slow body of `plan`'s download; True when that makes MAX_SLOW_BODIES."""
        with self._slow_lock:
            count = self._slow_bodies.get(plan, 0) + 1
            self._slow_bodies[plan] = count
        return count >= MAX_SLOW_BODIES

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
