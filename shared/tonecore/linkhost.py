"""The host's end of the USB serial link, sans-IO: bytes in, bytes out (h11's shape).

`HostEnd` talks to the pedal's `tonecore.link.PedalEnd`.  Everything the host decides
lives here, once: the outbound byte queue and the pedal's credit, requests matched to
replies by seq and sent again (same seq: the pedal answers a repeat from its cache),
HELLO, a new session when ours went idle or the pedal lost it, LIST paging, and the
push (PUT, the DATA stream with its rewinds and compression, re-PUT after a pedal
restart, COMMIT).  The caller only moves bytes; the host's serial session
(host/tonebridge/link/session.py) does it with select() on a port, the core's tests
(tests/core/linksim.py) over a simulated line.  One operation at a time:

    end = HostEnd(compress=deflate)          # compress: optional, bytes -> raw deflate
    end.push(fields, read, now_ms)           # or open_session, request, list_models, bye
    while not end.done():
        data = end.to_write()                # what may be written now (a copy)
        end.written(port.write(data))        # ...however much of it went out
        end.receive(port.read(), now_ms)     # whatever the pedal sent
        end.tick(now_ms)                     # timers: retransmission, giving up
    result = end.result()                    # or raises PedalRefused, LinkBroken...

Time is passed in (`now_ms`, never read here); so is the file (`read(offset, count)`)
and the compressor (zlib is a host library).  docs/protocol.md is the specification.
"""

import random

from . import link
from .compat import const, hexlify
from .errors import LinkBroken, PedalRefused, ProtocolError, UsageError
from .frame import WIRE_OVERHEAD, Decoder
from .linktransfer import Transfer

RTO_MS = const(1000)  # a request, or a transfer, without an answer for this long: send again
RETRIES = const(5)  # ...this many times, then the pedal is "not answering" (LinkBroken)
TRANSFER_FAILURES = const(3)  # a transfer gives up after retries + this many RTOs in a row
IDLE_MS = const(2500)  # a session unused for longer is opened again (the pedal ends it after 5 s)
RESUMES = const(3)  # a push whose transfer the pedal lost (it restarted) is PUT again this often
LIST_RETRIES = const(2)  # a LIST page is asked for this many more times before pages shrink
PLAIN_AFTER_MISS = const(16)  # chunks sent plain after one that deflate did not shrink by 10 %
BATCH_BYTES = const(64 * 1024)  # queued at once where the link holds the host back by itself
MAX_REPLY = const(8192)  # the largest reply frame taken (LIST pages stay under link.LIST_BYTES)


def _random_bits(bits):
    return random.getrandbits(bits)


class PushResult:
    """What a push did: where it resumed, payload bytes sent (resent included), frames
    sent deflated, rewinds, timeouts, re-PUTs, and seconds from PUT to verified COMMIT."""

    FIELDS = ("model_id", "size", "sha256", "resumed_from", "sent", "resent", "elapsed_s", "compressed_frames",
              "rewinds", "timeouts", "resumes")

    def __init__(self, model_id, size, sha256):
        self.model_id = model_id
        self.size = size
        self.sha256 = hexlify(sha256)
        self.resumed_from = None
        self.sent = self.resent = self.compressed_frames = self.rewinds = self.timeouts = self.resumes = 0
        self.elapsed_s = 0.0

    def to_json(self):
        return {name: getattr(self, name) for name in self.FIELDS}


class HostEnd:
    """The host's end of the link.

    Args:
        rto_ms: a request without a reply, or a transfer without progress, for this
            long is sent again.
        retries: a request is sent again this many times, a HELLO too (each with a new
            nonce); a transfer gives up after retries + TRANSFER_FAILURES RTOs in a row.
        compress: a function(bytes) -> raw-deflated bytes (wbits 9), or None: DATA is
            sent deflated only where the pedal inflates and it saves 10 %.
        batch_bytes: where the pedal announces no rx_buffer, DATA is queued up to this
            many bytes ahead (fewer, larger writes); otherwise one frame at a time.
        max_payload: the largest DATA payload (default: what the pedal's max_frame allows).
        max_reply: the largest frame the pedal may send (its decoder buffer).
        random_bits: a function(bits) -> int for HELLO nonces and the first seq.

    State worth reading: `info` (the pedal's HELLO as a dict, None without a session),
    `transfer` (the push's current or last tonecore.linktransfer.Transfer: its counters
    stay after it ends).
    """

    def __init__(self, rto_ms=RTO_MS, retries=RETRIES, compress=None, batch_bytes=BATCH_BYTES, max_payload=None,
                 max_reply=MAX_REPLY, random_bits=_random_bits):
        self.rto_ms = rto_ms
        self.retries = retries
        self.compress = compress
        self.batch_bytes = batch_bytes
        self.max_payload = max_payload
        self.random_bits = random_bits
        self.decoder = Decoder(max_reply)
        self.seq = random_bits(16)
        self.info = None
        self.now = 0
        self.last_sent_ms = None  # when the pedal last got bytes from us (its session timer restarts)
        self.last_seq = None  # of the last request answered: a transfer counts wire bytes from its end
        self.transfer = None
        self.sending = False  # the transfer is running: DATA is queued, ACKs count
        self.read = None  # the push's read(offset, count)
        self.report = None  # the push's PushResult
        self.plain_chunks = 0  # chunks still to send without trying to deflate them
        # The outbound queue: out[out_at:] is not written yet.  `cut`: the last byte
        # written was not a frame's final 0x00 (a frame is half out).
        self.out = bytearray()
        self.out_at = 0
        self.cut = False
        # The operation: a generator that yields while it waits for a reply (`waiting`
        # is its seq, until `deadline`) or for the transfer to end.
        self.op = None
        self.waiting = None
        self.deadline = 0
        self.value = None
        self.error = None

    # -- operations: start one, move bytes until done(), then result() ------------------

    def open_session(self, now_ms):
        """Start a HELLO.  Result: `info`, the pedal's board, free flash and link limits."""
        self._start(self._hello(), now_ms)

    def request(self, kind, fields, now_ms, retries=None):
        """Start a control request (HELLO first when there is no session or it was idle).
        Result: the reply map.  Raises (from result()): PedalRefused, LinkBroken."""
        self._start(self._call(kind, fields, retries), now_ms)

    def list_models(self, now_ms):
        """Start listing the pedal's models, page by page.  Result: ([LIST item], active id)."""
        self._start(self._list(), now_ms)

    def push(self, fields, read, now_ms):
        """Start pushing a file: PUT `fields` (link.K_* -> value; K_ID, K_SIZE, K_SHA and
        K_FILENAME required), the DATA from the pedal's offset, COMMIT.
        `read(offset, count)` returns that much of the file.  Result: a PushResult.  A
        name is sent as the pedal takes it: control characters as spaces, at most
        link.MAX_NAME characters."""
        size, sha = fields.get(link.K_SIZE), fields.get(link.K_SHA)
        if type(size) is not int or size < 0 or type(sha) is not bytes or len(sha) != 32:
            raise UsageError("a push needs the file's size and its 32-byte SHA-256")
        name = fields.get(link.K_NAME)
        if type(name) is str:
            fields = dict(fields)
            fields[link.K_NAME] = "".join(" " if c < " " or c == "\x7f" else c for c in name)[:link.MAX_NAME]
        self.transfer = None
        self._start(self._push(fields, read), now_ms)

    def bye(self, now_ms):
        """Start a BYE (one retry, never a HELLO first); the session is over whatever the answer."""
        self._start(self._bye(), now_ms)

    def done(self):
        """True when no operation is running (result() has its outcome)."""
        return self.op is None

    def result(self):
        """The last operation's result; raises its error instead, if it failed."""
        if self.op is not None:
            raise UsageError("the operation is still running")
        if self.error is not None:
            raise self.error
        return self.value

    def abort(self):
        """Give the operation up (the caller's I/O failed, or it was interrupted): its
        transfer ends and unwritten frames are forgotten (a cut one is ended with 0x00,
        so the next request reaches the pedal whole)."""
        op, self.op = self.op, None
        self.waiting = None
        if op is not None:
            op.close()  # its finally blocks run: a transfer's counters are kept
        if self.sending:
            self._end_transfer()
        self._forget_queued()

    # -- bytes out, bytes in, time ----------------------------------------------------

    def to_write(self, limit=None):
        """The bytes that may be written now (a copy; b"" for none): the queue, within the
        pedal's credit during a transfer, at most `limit`.  Then call written(count)."""
        if self.sending:
            try:
                self._fill()
            except Exception as exc:  # the read callback failed: so did the push
                self._resume(None, exc)
        count = len(self.out) - self.out_at
        if self.sending:
            count = min(count, self.transfer.budget())
        if limit is not None:
            count = min(count, limit)
        if count <= 0:
            return b""
        return bytes(memoryview(self.out)[self.out_at:self.out_at + count])

    def written(self, count):
        """`count` bytes of what to_write() returned went out."""
        if count <= 0:
            return
        self.out_at += count
        self.cut = self.out[self.out_at - 1] != 0
        self.last_sent_ms = self.now
        if self.sending:
            self.transfer.written(count)

    def receive(self, data, now_ms):
        """Bytes read from the pedal (bytes or bytearray)."""
        self.now = now_ms
        for kind, seq, payload in self.decoder.feed(data):
            if kind == link.ACK:
                if self.sending:
                    self._ack(payload)
            elif kind == link.CONTROL and seq == self.waiting:
                try:
                    reply = link.parse_control(payload)
                except ProtocolError:
                    reply = None  # damaged past the CRC: as good as lost
                self.waiting = None
                self._resume(reply)

    def tick(self, now_ms):
        """Time passes: an unanswered request is due again; a transfer without progress
        goes back to the last acknowledged offset, or gives up (LinkBroken)."""
        self.now = now_ms
        if self.waiting is not None:
            if now_ms - self.deadline >= 0:
                self.waiting = None
                self._resume(None)
        elif self.sending:
            transfer = self.transfer
            rewinds = transfer.rewinds
            try:
                transfer.check(now_ms)
            except LinkBroken as exc:
                self._resume(None, exc)
                return
            if transfer.rewinds != rewinds:
                self._forget_queued()

    # -- the operation's generator ----------------------------------------------------

    def _start(self, op, now_ms):
        if self.op is not None:
            raise UsageError("the link is busy: one operation at a time")
        self.now = now_ms
        self.value = self.error = None
        self.op = op
        self._resume(None)

    def _resume(self, value, error=None):
        """Run the operation until it waits again, or ends (its result or error kept)."""
        op = self.op
        if op is None:
            return
        try:
            if error is None:
                op.send(value)
            else:
                op.throw(error)
            return
        except StopIteration as stop:
            self.value = stop.value
        except Exception as exc:  # the operation's failure: result() raises it
            self.error = exc
        self.op = None
        self.waiting = None

    def _reply(self, seq):
        """Wait for the reply to request `seq`: the map, or None after rto_ms."""
        self.waiting = seq
        self.deadline = self.now + self.rto_ms
        reply = yield
        return reply

    def _call(self, kind, fields=None, retries=None, session=True):
        """A request until answered; `session`: HELLO first when there is no session or
        it was idle, and again when the pedal says it has none (restarted)."""
        if session and (self.info is None or self._idle()):
            yield from self._hello()
        seq = self._next_seq()
        wire = link.control(seq, kind, fields)
        tries = (self.retries if retries is None else retries) + 1
        for _ in range(tries):
            self._send_control(wire)
            reply = yield from self._reply(seq)
            if reply is None:
                continue
            if reply[link.K_TYPE] == link.ERROR:
                if not session or reply.get(link.K_CODE) != link.E_NO_SESSION:
                    raise _refusal(reply)
                yield from self._hello()
                seq = self._next_seq()
                wire = link.control(seq, kind, fields)
                continue
            self.last_seq = seq
            return reply
        raise LinkBroken("the pedal stopped answering (no reply to a request %d times)" % tries)

    def _hello(self):
        """Open a session: HELLO until the pedal answers (a new seq and nonce each try)."""
        self.info = None
        for _ in range(self.retries + 1):
            seq, nonce, wire = self._hello_frame()
            self._send_control(wire, lead=True)
            reply = yield from self._reply(seq)
            if reply is None:
                continue
            if reply[link.K_TYPE] == link.ERROR:
                raise _refusal(reply)
            if reply.get(link.K_NONCE) != nonce:
                continue  # an old session's answer
            self.info = _session_info(reply)
            self.last_seq = seq
            return self.info
        raise LinkBroken("no answer from a pedal on this port (is the tonebridge firmware running?)")

    def _hello_frame(self):
        """(seq, nonce, wire) of a HELLO whose frame holds no 0x03: until the session is
        open, the pedal's console takes that byte for Ctrl-C."""
        while True:
            seq = self._next_seq()
            nonce = self.random_bits(30)
            wire = link.control(seq, link.HELLO, {link.K_VERSION: link.VERSION, link.K_NONCE: nonce})
            if wire.find(b"\x03") < 0:
                return seq, nonce, wire

    def _bye(self):
        try:
            return (yield from self._call(link.BYE, None, 1, session=False))
        finally:
            self.info = None

    def _list(self):
        """Every LIST page; after a page is lost (a noisy line, or the pedal short of
        memory for it) smaller ones: 4 models, then halving down to 1."""
        items = []
        start = 0
        limit = None  # as many as fit in a frame
        while True:
            fields = {link.K_START: start}
            if limit is not None:
                fields[link.K_LIMIT] = limit
            try:
                reply = yield from self._call(link.LIST, fields, LIST_RETRIES if limit != 1 else None)
            except (LinkBroken, PedalRefused) as error:
                if limit == 1 or (isinstance(error, PedalRefused) and error.code != link.E_BUSY):
                    raise
                limit = 4 if limit is None else max(1, limit // 2)
                continue
            page = reply.get(link.K_MODELS) or []
            items += page
            start += len(page)
            if not page or start >= (reply.get(link.K_TOTAL) or 0):
                return items, reply.get(link.K_ACTIVE)

    def _push(self, fields, read):
        size, sha, model_id = fields[link.K_SIZE], fields[link.K_SHA], fields[link.K_ID]
        report = self.report = PushResult(model_id, size, sha)
        started = self.now
        resumes = 0
        while True:
            put = yield from self._call(link.PUT, fields)
            offset = put.get(link.K_OFFSET) or 0
            if report.resumed_from is None:
                report.resumed_from = offset
            if (yield from self._send_file(size, offset, read)):
                break
            resumes += 1  # the pedal lost the transfer (it restarted): PUT again
            if resumes > RESUMES:
                raise LinkBroken("the pedal lost the transfer %d times; giving up" % resumes)
        reply = yield from self._call(link.COMMIT, {link.K_ID: model_id})
        if reply.get(link.K_SHA) != sha:
            raise PedalRefused("the pedal installed something else than was sent (SHA-256 differs)",
                               link.E_INTEGRITY)
        report.resumes = resumes
        report.elapsed_s = (self.now - started) / 1000
        return report

    def _send_file(self, size, offset, read):
        """Stream the file from `offset` until the pedal has all of it: True; False when
        the pedal has no transfer open (it restarted)."""
        info = self.info
        self._forget_queued()
        transfer = self.transfer = Transfer(
            size, offset, info["max_frame"], info["window"], info["rx_buffer"], self.max_payload, self.rto_ms,
            self.retries + TRANSFER_FAILURES, self.now, self.last_seq)
        transfer.queued = len(self.out) - self.out_at  # a 0x00 ending a cut frame, if any
        self.read = read
        self.plain_chunks = 0
        self.sending = True
        try:
            if transfer.done():
                return True  # the pedal has it all already
            done = yield
        finally:
            self._end_transfer()
        return done

    def _end_transfer(self):
        self.sending = False
        self.read = None
        self._forget_queued()
        transfer, report = self.transfer, self.report
        if report is not None:
            report.resent += transfer.resent
            report.rewinds += transfer.rewinds
            report.timeouts += transfer.timeouts

    def _ack(self, payload):
        try:
            anchor, pulled, nxt, durable, flags = link.parse_ack(payload)
        except ProtocolError:
            return
        transfer = self.transfer
        rewinds = transfer.rewinds
        transfer.on_ack(anchor, pulled, nxt, durable, flags, self.now)
        if transfer.lost:
            self._resume(False)
        elif transfer.done():
            self._resume(True)
        elif transfer.rewinds != rewinds:
            self._forget_queued()

    # -- the outbound queue -----------------------------------------------------------

    def _fill(self):
        """Queue DATA while the window allows: one frame at a time where the pedal's
        buffer is small (a rewind then forgets little), up to batch_bytes where the link
        holds the host back by itself."""
        transfer = self.transfer
        deflate = self.compress if self.info["deflate"] else None
        while True:
            unwritten = len(self.out) - self.out_at
            if unwritten and (transfer.rx_buffer or unwritten >= self.batch_bytes):
                return
            chunk = transfer.next_chunk()
            if chunk is None:
                return
            offset, count = chunk
            data = self.read(offset, count)
            if len(data) != count:
                raise UsageError("the file changed while it was being sent")
            kind = link.DATA
            if deflate is not None:
                if self.plain_chunks:
                    self.plain_chunks -= 1
                else:
                    packed = deflate(data)
                    if len(packed) * 10 < count * 9:
                        data, kind = packed, link.DEFLATE
                        self.report.compressed_frames += 1
                    else:
                        self.plain_chunks = PLAIN_AFTER_MISS  # incompressible: look again later
            seq = self._next_seq()
            wire = link.data_frame(seq, offset, data, kind)
            transfer.data_queued(seq, offset, count, len(wire))
            self.report.sent += count
            self._queue(wire)

    def _send_control(self, wire, lead=False):
        """Queue a control frame after whatever is left unwritten is forgotten (a copy of
        it, sent again, goes whole); `lead`: a 0x00 first, ending any partial line."""
        self._forget_queued()
        if lead:
            self._queue(b"\x00")
        self._queue(wire)

    def _queue(self, wire):
        if self.out_at and self.out_at * 2 >= len(self.out):  # (amortized: a batch is not moved per frame)
            self.out[:self.out_at] = b""  # drop what was written (in place: no new buffer)
            self.out_at = 0
        self.out += wire

    def _forget_queued(self):
        """Forget the bytes not written yet.  A frame cut in the middle is ended with a
        0x00: the pedal drops it and reads the next frame whole."""
        unwritten = len(self.out) - self.out_at
        self.out[:] = b""
        self.out_at = 0
        if self.cut:
            self.out.append(0)
        if self.sending:
            self.transfer.queued += len(self.out) - unwritten  # wire positions of later frames

    def _next_seq(self):
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def _idle(self):
        return self.last_sent_ms is not None and self.now - self.last_sent_ms > IDLE_MS


def _session_info(reply):
    """The HELLO reply as the dict `HostEnd.info`; ProtocolError for impossible limits."""
    info = {
        "board": reply.get(link.K_BOARD), "free_bytes": reply.get(link.K_FREE),
        "firmware": reply.get(link.K_FIRMWARE), "max_frame": reply.get(link.K_MAX_FRAME),
        "window": reply.get(link.K_WINDOW), "rx_buffer": reply.get(link.K_RX_BUFFER),
        "deflate": bool(reply.get(link.K_DEFLATE)), "protocol": reply.get(link.K_VERSION),
    }
    for name, least in (("max_frame", WIRE_OVERHEAD + link.DATA_HEADER + 1), ("window", 1), ("rx_buffer", 0)):
        if type(info[name]) is not int or info[name] < least:
            raise ProtocolError("the pedal's HELLO says %s is %r" % (name, info[name]))
    return info


def _refusal(reply):
    code = reply.get(link.K_CODE)
    return PedalRefused("the pedal refused: %s" % (reply.get(link.K_MESSAGE) or "error %s" % code), code)
