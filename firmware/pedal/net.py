"""The pedal's HTTP client: asyncio sockets + tls, and the adapter that runs core calls.

Not micropython-lib `requests`: that one never verifies certificates, forwards
Authorization across redirects and follows them without limit.  Here:

  * https always verifies: tls.SSLContext(PROTOCOL_TLS_CLIENT), CERT_REQUIRED, the
    board's pinned DER roots, server_hostname.  Plain http only when the URL says so
    (the emulator); the core refuses https -> http redirects.
  * every socket operation has a timeout (`io_timeout_ms`); connect + request +
    response head share a deadline (`deadline_ms`), which covers the body too for an
    API reply; a download's body has its own (`download_deadline_ms`);
  * a body slower than `min_rate_bytes` per `rate_window_ms` is "sent too slowly"
    (TransportError); the core resumes it, and the MAX_SLOW_BODIES-th slow body (or
    past its deadline) of one download ends that download (DownloadError): a server
    dripping a byte at a time cannot hold a sync;
  * the response head is read into one preallocated buffer and may not exceed it
    (HEAD_MAX); JSON bodies are capped (`max_body`); chunk-size lines (LINE_MAX),
    trailers (`max_trailers`) and chunk framing beyond the data (FRAMING_SLACK) are
    bounded: an endless trailer is a ProtocolError;
  * Content-Length, chunked and close-delimited bodies; a body is read with `readinto`
    into the same preallocated buffer, so a download never allocates per chunk.
  * one connection per request (Connection: close), closed on every path: `open`
    counts sockets still open, and tests check it returns to 0 after any error.

The limits are settings: `Http(..., limits={"rate_window_ms": 1000, ...})` overrides any
of LIMITS (a board's config.json "net"; the simulator's TONEBRIDGE_NET).

`AsyncioDriver` is the core's Driver (tonecore.client) on asyncio: the core steps the
calls (`run_async`); this module only performs each step's I/O.  Error messages name
the origin only, never a path or query (signed URLs).
"""

import asyncio
import json
import socket
import time
from errno import EINPROGRESS

from asyncio import core

from tonecore.client import Driver
from tonecore.errors import DownloadError, ProtocolError, TransportError, TrustError
from tonecore.http import Response
from tonecore.urls import split_url

from .console import log

HEAD_MAX = 4096
BUFFER = 8192  # head, JSON bodies (parsed in place) and download chunks share it
IO_TIMEOUT_MS = 15000
DEADLINE_MS = 30000  # connect, request, head (and an API reply's body)
DOWNLOAD_DEADLINE_MS = 600000  # a download's body, once its head arrived
MIN_RATE_BYTES = 4096  # a body bringing fewer bytes than this...
RATE_WINDOW_MS = 10000  # ...in a window this long was sent too slowly (400 B/s: Wi-Fi does 100x)
MAX_TRAILERS = 16  # trailer lines after a chunked body
MAX_BODY = 8192
MAX_SLOW_BODIES = 2  # slow bodies of one download before it is given up on
LINE_MAX = 256  # a chunk-size line
FRAMING_SLACK = 4096  # chunk framing may exceed the data by this much
# the settings `limits` may override
LIMITS = ("io_timeout_ms", "deadline_ms", "download_deadline_ms", "min_rate_bytes", "rate_window_ms",
          "max_trailers", "max_body")
FAST_READS = 16  # reads without a trip through the event loop, at most
USER_AGENT = "tonebridge-pedal"


def _writable(sock):
    """Awaitable: until `sock` can be written (a non-blocking connect finished)."""
    yield core._io_queue.queue_write(sock)


async def _send(stream, head, body):
    stream.write(head)
    if body:
        stream.write(body)
    await stream.drain()


def _origin(url):
    return "%s://%s" % (url.scheme, url.netloc)


class Http:
    """Sends requests; one instance (and one buffer) per pedal.

    Args:
        ca_ders: DER CA certificates (bytes) trusted for https.
        buffer_size: the receive buffer (>= HEAD_MAX), reused by every response.
        limits: a dict overriding any of LIMITS (the settings' "net"); None: defaults.
    Attributes:
        open: sockets currently open (0 when idle).
    """

    def __init__(self, ca_ders=(), buffer_size=BUFFER, io_timeout_ms=IO_TIMEOUT_MS,
                 deadline_ms=DEADLINE_MS, max_body=MAX_BODY, limits=None):
        self.ca_ders = ca_ders
        self.buf = bytearray(buffer_size if buffer_size > HEAD_MAX else HEAD_MAX)
        self.mv = memoryview(self.buf)
        self.io_timeout_ms = io_timeout_ms
        self.deadline_ms = deadline_ms
        self.download_deadline_ms = DOWNLOAD_DEADLINE_MS
        self.min_rate_bytes = MIN_RATE_BYTES
        self.rate_window_ms = RATE_WINDOW_MS
        self.max_trailers = MAX_TRAILERS
        self.max_body = max_body
        for name in limits or ():  # a wrong one is logged, not fatal: a pedal must still boot
            try:
                if name not in LIMITS:
                    raise ValueError("known: " + ", ".join(LIMITS))
                setattr(self, name, int(limits[name]))
            except (TypeError, ValueError) as exc:
                log("net: setting %r ignored (%s)" % (name, exc))
        self.open = 0
        self._tls = None

    def _context(self, origin):
        if self._tls is None:
            import tls

            if not self.ca_ders:
                raise TrustError("refusing %s: this pedal has no CA certificates to verify it" % origin)
            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = tls.CERT_REQUIRED
            for der in self.ca_ders:
                ctx.load_verify_locations(der)
            self._tls = ctx
        return self._tls

    async def send(self, request):
        """Send `request`; return an HttpResponse (body read unless `request.stream`)."""
        url = split_url(request.url)
        for bad in "\r\n \t":
            if bad in url.target or bad in url.host:  # a URL from a server must not write our request
                raise ProtocolError("refusing a URL with spaces or line breaks on %s" % _origin(url))
        response = HttpResponse(self, url, request.method)
        try:
            await response.open(request)
            if not request.stream:
                await response.read_all()
        except BaseException:
            response.close()
            raise
        return response


class HttpResponse(Response):
    """A response on its own connection.  Body bytes come from `read_some()`."""

    def __init__(self, http, url, method):
        super().__init__(0, {}, None, str(url))
        self.http = http
        self.where = _origin(url)
        self.split = url
        self.method = method
        self.stream = None
        self.sock = None
        self.deadline = None
        self.start = self.end = 0  # buffered body bytes: http.buf[start:end]
        self.left = -1  # bytes left in the body (length mode) or in the chunk; -1 = unknown
        self.mode = None  # 'length' | 'chunked' | 'close' | None (no body)
        self.done = False
        self.truncated = False
        self.chunks = 0
        self.fast = 0
        self.phase = "the connection to %s broke: %s"
        self.window_end = None  # the rate window's end (ticks), once the body started
        self.window_bytes = 0
        self.in_body = False
        self.streamed = False
        self.too_slow = False
        self.framing = 0  # chunk framing bytes, and body bytes, of a chunked body
        self.data = 0
        self._waiting_for = None  # the limit `_timeout` last shortened a wait for

    # -- connection ----------------------------------------------------------------

    async def open(self, request):
        url = self.split
        http = self.http
        self.deadline = time.ticks_add(time.ticks_ms(), http.deadline_ms)
        ctx = http._context(self.where) if url.scheme == "https" else None
        try:
            family, kind, proto, _, address = socket.getaddrinfo(url.host, url.port, 0, socket.SOCK_STREAM)[0]
        except OSError as exc:
            raise TransportError("cannot reach %s: %s" % (self.where, _reason(exc)))
        sock = socket.socket(family, kind, proto)
        self.sock = sock
        http.open += 1
        sock.setblocking(False)
        try:
            sock.connect(address)
        except OSError as exc:
            if exc.args[0] != EINPROGRESS:
                raise TransportError("cannot reach %s: %s" % (self.where, _reason(exc)))
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname=url.host, do_handshake_on_connect=False)
            sock.setblocking(False)
            self.sock = sock
        self.stream = reader = asyncio.StreamReader(sock)
        self.phase = "cannot reach %s: %s"
        await self._io(_writable(sock))
        head = "%s %s HTTP/1.1\r\nhost: %s\r\nuser-agent: %s\r\nconnection: close\r\n" % (
            request.method, url.target, url.netloc, USER_AGENT)
        headers = request.headers
        for name in headers:
            head += "%s: %s\r\n" % (name, headers[name])
        if request.body is not None:
            head += "content-length: %d\r\n" % len(request.body)
        await self._io(_send(reader, head.encode() + b"\r\n", request.body))
        self.phase = "the connection to %s broke: %s"
        await self._read_head()
        now = time.ticks_ms()
        self.in_body = True
        self.streamed = request.stream
        if request.stream:  # a download: its own deadline (an API reply keeps the request's)
            self.deadline = time.ticks_add(now, http.download_deadline_ms) if http.download_deadline_ms else None
        if http.min_rate_bytes and http.rate_window_ms:
            self.window_end = time.ticks_add(now, http.rate_window_ms)
            self.window_bytes = self.end - self.start  # what came with the head

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
            self.stream = None
            self.http.open -= 1

    def _late(self):
        http = self.http
        if self.in_body:
            limit = http.download_deadline_ms if self.streamed else http.deadline_ms
            self.too_slow = self.streamed  # a download past its deadline came too slowly
            return TransportError("%s did not send a complete reply within %d s" % (self.where, limit // 1000))
        return TransportError("%s did not answer within %d s" % (self.where, http.deadline_ms // 1000))

    def _slow(self):
        self.too_slow = True
        return TransportError("%s sent too slowly (fewer than %d bytes in %d s)"
                              % (self.where, self.http.min_rate_bytes, self.http.rate_window_ms // 1000))

    def _timeout(self):
        """How long the next wait may last: the io timeout, or less when the deadline
        or the end of a short rate window comes first.  Raises the limit that passed."""
        http = self.http
        now = time.ticks_ms()
        timeout = http.io_timeout_ms
        self._waiting_for = None
        if self.deadline is not None:
            left = time.ticks_diff(self.deadline, now)
            if left <= 0:
                raise self._late()
            if left < timeout:
                timeout = left
                self._waiting_for = self._late
        if self.window_end is not None and self.window_bytes < http.min_rate_bytes:
            left = time.ticks_diff(self.window_end, now)
            if left <= 0:
                raise self._slow()
            if left < timeout:
                timeout = left
                self._waiting_for = self._slow
        return timeout

    def _arrived(self, count):
        """`count` body bytes came in: check the deadline and the rate window."""
        now = time.ticks_ms()
        if self.deadline is not None and time.ticks_diff(self.deadline, now) <= 0:
            raise self._late()
        if self.window_end is not None:
            self.window_bytes += count
            if time.ticks_diff(now, self.window_end) >= 0:
                if self.window_bytes < self.http.min_rate_bytes:
                    raise self._slow()
                self.window_end = time.ticks_add(now, self.http.rate_window_ms)
                self.window_bytes = 0

    async def _io(self, op):
        try:
            return await asyncio.wait_for_ms(op, self._timeout())
        except asyncio.TimeoutError:
            if self._waiting_for is not None:
                raise self._waiting_for()
            raise TransportError("%s stopped answering (no data for %d s)" % (self.where, self.http.io_timeout_ms // 1000))
        except OSError as exc:
            raise TransportError(self.phase % (self.where, _reason(exc)))
        except ValueError as exc:  # mbedtls reports certificate problems as ValueError
            raise TrustError("refusing %s: its TLS certificate did not verify (%s)" % (self.where, _short(exc)))

    async def _recv(self, dest):
        """Read at least one byte into `dest` (0 at end of stream).

        Fast path: while bytes are waiting, read them straight from the non-blocking
        socket (no task, no timer per read), yielding to the other tasks (the portal)
        every FAST_READS reads.  Only when the socket is empty does the read go
        through asyncio with its timeout.
        """
        if self.fast < FAST_READS:
            self.fast += 1
            try:
                count = self.sock.readinto(dest)
            except OSError as exc:
                raise TransportError(self.phase % (self.where, _reason(exc)))
            except ValueError as exc:
                raise TrustError("refusing %s: its TLS certificate did not verify (%s)" % (self.where, _short(exc)))
            if count is not None:
                if self.in_body:
                    self._arrived(count)
                return count
        self.fast = 0
        while True:
            count = await self._io(self.stream.readinto(dest))
            if count is not None:  # None: nothing yet (or TLS wanted more bytes first)
                if self.in_body:
                    self._arrived(count)
                return count

    # -- head ----------------------------------------------------------------------

    async def _read_head(self):
        buf, mv = self.http.buf, self.http.mv
        filled = scan = 0
        while True:
            end = buf.find(b"\r\n\r\n", scan, filled) if filled else -1
            if end < 0:
                if filled >= HEAD_MAX:
                    raise ProtocolError("%s sent a response head larger than %d bytes" % (self.where, HEAD_MAX))
                count = await self._recv(mv[filled:HEAD_MAX])
                if not count:
                    raise TransportError("%s closed the connection without a complete response" % self.where)
                scan = filled - 3 if filled > 3 else 0
                filled += count
                continue
            status = self._parse_head(mv[:end])
            self.start, self.end = end + 4, filled
            if 100 <= status < 200:  # an interim response: the real one follows
                filled -= self.start
                buf[:filled] = mv[self.start:self.end]
                scan = 0
                continue
            self._framing()
            return

    def _parse_head(self, raw):
        try:
            lines = str(bytes(raw), "utf-8").split("\r\n")
        except UnicodeError:
            raise ProtocolError("%s sent a response head that is not text" % self.where)
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
            raise ProtocolError("%s sent a malformed status line" % self.where)
        self.status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            name = name.strip().lower()
            if not sep or not name:
                raise ProtocolError("%s sent a malformed header line" % self.where)
            value = value.strip()
            headers[name] = headers[name] + ", " + value if name in headers else value
        self.headers = headers
        return self.status

    def _framing(self):
        status = self.status
        if self.method == "HEAD" or status in (204, 304):
            self.done = True
            return
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self.mode = "chunked"
            self.left = 0
            return
        length = self.headers.get("content-length")
        if length is None:
            self.mode = "close"
            return
        values = [v.strip() for v in length.split(",")]
        if not values[0].isdigit() or any(v != values[0] for v in values):
            raise ProtocolError("%s sent a bad Content-Length" % self.where)
        self.mode = "length"
        self.left = int(values[0])
        if not self.left:
            self.done = True

    # -- body ----------------------------------------------------------------------

    async def read_some(self):
        """The next piece of body as a memoryview of the shared buffer, or None at the end.

        The view is valid until the next call.  A body that ends early sets `truncated`.
        """
        if self.done:
            return None
        if self.mode == "chunked" and self.left == 0:
            if not await self._next_chunk():
                return None
        mv = self.http.mv
        limit = self.left if self.mode != "close" else len(mv)
        if self.start < self.end:
            take = self.end - self.start
            if take > limit:
                take = limit
            chunk = mv[self.start:self.start + take]
            self.start += take
        else:
            take = await self._recv(mv[:limit if limit < len(mv) else len(mv)])
            if not take:
                self.done = True
                self.truncated = self.mode != "close"
                return None
            chunk = mv[:take]
        if self.mode != "close":
            self.left -= take
            if self.mode == "length" and not self.left:
                self.done = True
        self.data += take
        return chunk

    async def _next_chunk(self):
        """Read a chunk-size line (after the previous chunk's CRLF); False at the end."""
        if self.chunks:
            line = await self._line()  # the CRLF that ends the previous chunk's data
            if line is None:
                return False
            if line:
                raise ProtocolError("%s sent a malformed chunked body" % self.where)
        self.chunks += 1
        line = await self._line()
        if line is None:
            return False
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("%s sent a malformed chunked body" % self.where)
        if size == 0:
            for _ in range(self.http.max_trailers + 1):  # trailers, up to the empty line
                line = await self._line()
                if not line:
                    self.done = True
                    return False
            raise ProtocolError("%s sent more than %d trailer lines" % (self.where, self.http.max_trailers))
        self.left = size
        return True

    async def _line(self):
        """One CRLF-terminated line from the buffer (without the CRLF); None at EOF."""
        buf, mv = self.http.buf, self.http.mv
        while True:
            at = buf.find(b"\n", self.start, self.end)
            if at >= 0:
                line = bytes(mv[self.start:at]).rstrip(b"\r")
                self.framing += at + 1 - self.start
                self.start = at + 1
                if self.framing > self.data + FRAMING_SLACK:
                    raise ProtocolError("%s sent more chunk framing than data" % self.where)
                return line
            kept = self.end - self.start
            if kept >= LINE_MAX:
                raise ProtocolError("%s sent a chunked body with a line longer than %d bytes" % (self.where, LINE_MAX))
            buf[:kept] = mv[self.start:self.end]
            self.start, self.end = 0, kept
            count = await self._recv(mv[kept:])
            if not count:
                self.done = True
                self.truncated = True
                return None
            self.end = kept + count

    async def read_all(self):
        """Read the whole (small) body into `body`; ProtocolError past `max_body`.

        A Content-Length body lands in the shared buffer (body is a memoryview of it,
        valid until the next request); a chunked or unframed one in a bytearray.
        """
        limit = self.http.max_body
        try:
            if self.mode == "length":  # read in place into the shared buffer: no allocation
                buf, mv = self.http.buf, self.http.mv
                size = self.left
                if size > limit or size > len(buf):
                    raise ProtocolError("%s sent a response larger than %d bytes" % (self.where, min(limit, len(buf))))
                got = self.end - self.start
                if got > size:
                    got = size
                buf[:got] = mv[self.start:self.start + got]
                while got < size:
                    count = await self._recv(mv[got:size])
                    if not count:
                        self.truncated = True
                        break
                    got += count
                self.done = True
                body = mv[:got]  # valid until the next request: parsed right away
            elif self.mode is None:
                body = b""
            else:
                body = bytearray()
                while True:
                    chunk = await self.read_some()
                    if chunk is None:
                        break
                    if len(body) + len(chunk) > limit:
                        raise ProtocolError("%s sent a response larger than %d bytes" % (self.where, limit))
                    body.extend(chunk)
            if self.truncated:
                raise TransportError("the connection to %s broke mid-response" % self.where)
        finally:
            self.close()
        self.body = body

    def json(self):
        """The body parsed in place (MicroPython's json reads a bytearray directly)."""
        if not self.body:
            raise ProtocolError("expected a JSON body from %s, got none (HTTP %d)" % (self.where, self.status))
        try:
            return json.loads(self.body)
        except (ValueError, TypeError):
            raise ProtocolError("malformed JSON from %s (HTTP %d)" % (self.where, self.status))
        except (RuntimeError, MemoryError):  # nesting: the parser's recursion or the heap ran out
            raise ProtocolError("malformed JSON from %s (HTTP %d): nested too deeply to parse"
                                % (self.where, self.status))


def _reason(exc):
    import errno

    code = exc.args[0] if exc.args else None
    names = {
        getattr(errno, "ECONNREFUSED", -1): "connection refused",
        getattr(errno, "ECONNRESET", -1): "connection reset",
        getattr(errno, "ETIMEDOUT", -1): "timed out",
        getattr(errno, "EHOSTUNREACH", -1): "no route to host",
        getattr(errno, "ENOTCONN", -1): "not connected",
        getattr(errno, "EPIPE", -1): "connection closed",
    }
    if code in names:
        return names[code]
    if isinstance(code, int) and code < 0:  # getaddrinfo failure codes
        return "name not resolved"
    return _short(exc)


def _short(exc):
    text = " ".join(str(a) for a in exc.args).strip() if exc.args else type(exc).__name__
    return text.replace("\n", " ").strip() or type(exc).__name__


class AsyncioDriver(Driver):
    """The core's Driver on asyncio: `await driver.run_async(call)`.

    Args:
        http: an Http.
        persist: function(tokens or None) storing tokens atomically (flash).
    """

    def __init__(self, http, persist=None):
        self.http = http
        self.store_tokens = persist
        self._slow_plan = None  # the download whose bodies came too slowly, and how many did
        self._slow_count = 0

    async def send(self, request):
        return await self.http.send(request)

    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(ms)

    async def persist(self, tokens):
        if self.store_tokens is not None:
            self.store_tokens(tokens)

    async def wait_for_refresh(self, session):
        await asyncio.sleep_ms(100)  # another task's refresh: the call looks again shortly

    async def stream_body(self, step):
        response, sink, plan = step.response, step.sink, step.plan
        try:
            if step.restart:
                sink.truncate()
            while True:
                chunk = await response.read_some()
                if chunk is None:
                    break
                sink.write(chunk)  # a failing sink (flash full) raises its own error
                plan.feed(chunk)
            if response.truncated:
                raise TransportError("the connection to %s broke mid-download" % response.where)
            plan.body_ended()
        except TransportError as exc:
            if not response.too_slow:
                raise
            if self._slow_plan is not plan:
                self._slow_plan, self._slow_count = plan, 0
            self._slow_count += 1
            if self._slow_count < MAX_SLOW_BODIES:
                raise  # resumed from what arrived
            self._slow_plan = None
            raise DownloadError("%s: %s, %d times; gave up" % (plan.filename, exc, self._slow_count))
        finally:
            response.close()
