"""The portal's HTTP server loop: what a connection must do before microdot sees it.

Anyone on the pedal's network (or its set-up access point) can open connections, so the
loop is written for hostile clients, not only for phones:

  * at most `max_connections` at once.  A new connection when all are taken evicts the
    oldest one still sending its head (a slow or idle client), so a flood of idle
    connections cannot lock a phone out; when every slot is answering a request, the
    newcomer is closed at once.
  * the head (request line + headers) must arrive within `head_timeout_ms`, in at most
    HEAD_MAX bytes and MAX_HEADERS lines.  It is read READ_BYTES at a time (small
    blocks, which a heap fragmented by a sync still has; nothing is held while nobody
    browses), so a 400 KB line or 4,000 headers never reach the heap: the client gets
    431 past HEAD_MAX.
  * the request line, header lines and Content-Length are checked here (a malformed
    head gets 400 without a traceback on the console), and `Host` must name the pedal
    (`allowed_host`): DNS rebinding gets 421.  A body (at most BODY_MAX, else 413) is
    read here too, under the head's deadline.
  * a request, its response included, must finish within `request_timeout_ms`; one
    reaper task (`_reap`) cancels whatever is past its deadline.
  * the accept loop never dies: an accept or a connection that fails (MemoryError
    included) is closed and counted; the console gets one summary line every 10 s,
    not one line per hostile connection.

Only then does `app.handle_request` (microdot) run, reading the head and body from what
was read (`_Replay`).
"""

import asyncio
import gc
import socket
import time
from asyncio import core
from asyncio.stream import Stream

from .console import log

HEAD_MAX = 2048  # a phone's browser sends 0.6-1 KB, cookie included
READ_BYTES = 256
BODY_MAX = 1024  # the page's forms are tiny (microdot's Request.max_body_length, set in portal.py)
MAX_HEADERS = 40
MAX_CONNECTIONS = 4
HEAD_TIMEOUT_MS = 4000
REQUEST_TIMEOUT_MS = 45000  # a sign-in callback exchanges its code with TONE3000 (30 s deadline)
REPORT_EVERY_MS = 10000
REAP_EVERY_MS = 250
METHODS = (b"GET", b"POST", b"HEAD")
_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 413: "Content Too Large", 421: "Misdirected Request",
            431: "Request Header Fields Too Large"}


def _readable(sock):
    """Awaitable: until `sock` has something to accept or read."""
    yield core._io_queue.queue_read(sock)


def check_head(head):
    """Check a request head (bytes up to and without the blank line).

    Returns:
        (status, host, length): status 0 when the head is acceptable (else the HTTP
        status to answer with), the Host header's name without its port (None when
        absent), and the body's Content-Length (0 without one).
    """
    lines = head.split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        return 431, None, 0
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[1].startswith(b"/") or not parts[2].startswith(b"HTTP/1."):
        return 400, None, 0
    if parts[0] not in METHODS:
        return 405, None, 0
    host = None
    length = 0
    for line in lines[1:]:
        colon = line.find(b":")
        if colon <= 0:
            return 400, None, 0
        name = line[:colon].strip().lower()
        value = line[colon + 1:].strip()
        if name == b"host":
            if host is not None:
                return 400, None, 0
            host = _host_name(value)
            if host is None:
                return 400, None, 0
        elif name == b"content-length":
            if not (value.isdigit() and len(value) < 9):
                return 400, None, 0
            length = int(value)
            if length > BODY_MAX:
                return 413, None, 0
        elif name == b"transfer-encoding":
            return 400, None, 0  # no chunked uploads: the forms are tiny
    return 0, host, length


def _host_name(value):
    """b"Pedal.local:80" -> "pedal.local"; None when it is not a plain host[:port]."""
    try:
        text = value.decode().lower()
    except UnicodeError:
        return None
    if text.startswith("["):  # [v6]:port
        end = text.find("]")
        return text[: end + 1] if end > 0 else None
    name, _, port = text.partition(":")
    if port and not port.isdigit():
        return None
    for char in name:
        if not (char.isalpha() or char.isdigit() or char in "-."):
            return None
    return name or None


class _Replay:
    """The reader microdot gets: the head from the buffer, then the body (the part of it
    already in the buffer, the rest from the socket)."""

    def __init__(self, stream, buf, head_end, filled):
        self.stream = stream
        self.buf = buf
        self.pos = 0
        self.head_end = head_end
        self.filled = filled

    async def readline(self):
        if self.pos >= self.head_end:
            return b""
        end = self.buf.find(b"\n", self.pos, self.head_end)
        end = self.head_end if end < 0 else end + 1
        line = bytes(self.buf[self.pos:end])
        self.pos = end
        return line

    def _take(self, n):
        start = max(self.pos, self.head_end)
        got = bytes(self.buf[start:min(self.filled, start + n)])
        self.pos = start + len(got)
        return got

    async def readexactly(self, n):
        got = self._take(n)
        if len(got) < n:  # never for a body: the server read it whole (Content-Length)
            raise EOFError
        return got

    async def read(self, n=-1):
        got = self._take(HEAD_MAX if n < 0 else n)
        if got:
            return got
        return await self.stream.read(n)


class Connection:
    def __init__(self, sock, address, deadline):
        self.stream = Stream(sock, {"peername": address})
        self.reading_head = True
        self.deadline = deadline  # ticks_ms: the head's, then the request's
        self.task = None


class WebServer:
    """Serves `app` (microdot) on a listening socket, one task per connection.

    Args:
        app: the Microdot app.
        allowed_host: function(name) -> True when a Host header name is the pedal's.
    Attributes:
        refused: connections closed before a request ran (evicted, oversized, slow,
            malformed, foreign Host, or no memory), since boot.
    """

    def __init__(self, app, allowed_host, max_connections=MAX_CONNECTIONS,
                 head_timeout_ms=HEAD_TIMEOUT_MS, request_timeout_ms=REQUEST_TIMEOUT_MS):
        self.app = app
        self.allowed_host = allowed_host
        self.max_connections = max_connections
        self.head_timeout_ms = head_timeout_ms
        self.request_timeout_ms = request_timeout_ms
        self.connections = []
        self.sock = None
        self.refused = 0
        self._reported = 0
        self._last_report = time.ticks_ms()

    def listen(self, host, port, backlog=4):
        """Bind now (raises OSError when the port is taken), serve with `run()`."""
        address = socket.getaddrinfo(host, port)[0][-1]
        sock = socket.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    async def run(self):
        """Accept connections until cancelled; nothing a client does ends this loop."""
        reaper = asyncio.create_task(self._reap())
        try:
            while True:
                try:
                    await self._accept()
                except asyncio.CancelledError:
                    raise
                except BaseException:  # MemoryError in the loop itself: start it again
                    self._shed()
                    await asyncio.sleep_ms(50)
        finally:
            reaper.cancel()

    async def _reap(self):
        """Cancel connections past their deadline (one task for all of them, instead of a
        timer task per connection)."""
        while True:
            await asyncio.sleep_ms(REAP_EVERY_MS)
            now = time.ticks_ms()
            for conn in self.connections:
                if time.ticks_diff(now, conn.deadline) > 0 and conn.task is not None:
                    try:
                        conn.task.cancel()  # its _serve() closes it and drops it from the list
                    except MemoryError:
                        gc.collect()

    async def _accept(self):
        while True:
            try:
                await _readable(self.sock)
                sock, address = self.sock.accept()
            except MemoryError:
                self._shed()
                continue
            except OSError:
                await asyncio.sleep_ms(5)  # EAGAIN after a client gave up, or out of sockets
                continue
            try:
                self._admit(sock, address)
            except BaseException as exc:  # MemoryError above all: drop this one, keep serving
                if isinstance(exc, asyncio.CancelledError):
                    raise
                sock.close()
                self._shed()
            try:
                self._report()
            except MemoryError:
                gc.collect()

    def _shed(self):
        self.refused += 1
        gc.collect()

    def _admit(self, sock, address):
        sock.setblocking(False)
        if len(self.connections) >= self.max_connections:
            victim = None
            for conn in self.connections:  # oldest first
                if conn.reading_head:
                    victim = conn
                    break
            if victim is None:  # every slot is answering a request: this one waits no turn
                sock.close()
                self.refused += 1
                return
            self._drop(victim)
            if victim.task is not None:
                victim.task.cancel()
        conn = Connection(sock, address, time.ticks_add(time.ticks_ms(), self.head_timeout_ms))
        self.connections.append(conn)
        conn.task = asyncio.create_task(self._serve(conn))

    def _drop(self, conn):
        if conn in self.connections:
            self.connections.remove(conn)
            if conn.reading_head:
                self.refused += 1

    async def _serve(self, conn):
        stream = conn.stream
        try:
            head = await self._read_head(stream)
            if head is None:
                return
            buf, head_end = head
            filled = len(buf)
            status, host, length = (431, None, 0) if head_end < 0 else check_head(buf[:head_end - 4])
            if not status and host is not None and not self.allowed_host(host):
                status = 421
            if status:
                await self._refuse(stream, status)
                return
            missing = head_end + length - filled
            if missing > 0:  # the body, under the head's deadline: microdot then reads only the buffer
                rest = await self._read_exactly(stream, missing)
                if rest is None:
                    return  # the client left half-way
                buf += rest
                filled = len(buf)
            conn.reading_head = False
            conn.deadline = time.ticks_add(time.ticks_ms(), self.request_timeout_ms)
            await self.app.handle_request(_Replay(stream, buf, head_end, filled), stream)
        except asyncio.CancelledError:
            pass  # evicted, or past its deadline (_reap)
        except BaseException as exc:  # timeouts, resets, MemoryError: this connection only
            if conn.reading_head:
                self.refused += 1
            elif not isinstance(exc, OSError):
                log("portal: a request failed: %r" % (exc,))
        finally:
            self._drop(conn)
            try:
                stream.s.close()  # the socket itself: Stream.close() is a no-op on some MicroPython versions
            except OSError:
                pass

    async def _read_head(self, stream):
        """(bytes read, end of the head incl. its blank line; -1 when it does not fit in
        HEAD_MAX), or None when the client closed first."""
        pieces = []
        filled = 0
        tail = b""
        while filled < HEAD_MAX:
            piece = await stream.read(min(READ_BYTES, HEAD_MAX - filled))  # loops on EAGAIN itself
            if not piece:
                return None
            pieces.append(piece)
            filled += len(piece)
            if (tail + piece).find(b"\r\n\r\n") >= 0:
                data = b"".join(pieces)
                return data, data.find(b"\r\n\r\n") + 4
            tail = piece[-3:]
        return b"", -1

    async def _read_exactly(self, stream, n):
        pieces = []
        while n > 0:
            piece = await stream.read(min(READ_BYTES, n))
            if not piece:
                return None
            pieces.append(piece)
            n -= len(piece)
        return b"".join(pieces)

    async def _refuse(self, stream, status):
        self.refused += 1
        await stream.awrite(("HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                             % (status, _REASONS[status])).encode())

    def _report(self):
        now = time.ticks_ms()
        if time.ticks_diff(now, self._last_report) < REPORT_EVERY_MS:
            return
        self._last_report = now
        if self.refused != self._reported:
            log("portal: %d connections refused or timed out in the last %d s (%d since boot)"
                % (self.refused - self._reported, REPORT_EVERY_MS // 1000, self.refused))
            self._reported = self.refused
