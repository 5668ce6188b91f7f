"""The host's end of the USB serial link: talk to a pedal over a serial port.

    with PedalLink.open_port("/dev/ttyUSB0") as pedal:     # HELLO
        pedal.info                                        # board, free flash, limits
        pedal.models()                                    # [PedalModel], active id
        pedal.push("model.nam", model_id=…, progress=…)   # resumable, verified on the pedal
        pedal.activate(model_id); pedal.delete(model_id)
                                                          # BYE on leaving
The protocol itself (frames, credit, retransmission) is tonecore.link, the same code
the pedal runs; this module moves the bytes with select() on the port's descriptor.
docs/protocol.md is the specification.
"""

import hashlib
import os
import random
import select
import time
import zlib

from tonecore import link
from tonecore.errors import LinkBroken, LinkError, PedalRefused, UsageError
from tonecore.frame import Decoder



DEFAULT_BAUD = 115200
RTO_S = 1.0  # a request without an answer for this long is sent again
RETRIES = 5  # ...this many times, then the pedal is "not answering"
IDLE_S = 2.5  # a session unused for longer is opened again (the pedal ends it after 5 s)
RESUMES = 3  # a push whose session was lost mid-way is resumed this many times
COMPRESS_BELOW = 0.9  # a chunk goes deflated only when that makes it this much smaller
BATCH_BYTES = 64 * 1024  # queued at once where the link holds the host back by itself
ERROR_NAMES = link.ERROR_NAMES


class PedalModel:
    """A model installed on the pedal (a LIST item)."""

    FIELDS = ("id", "name", "platform", "size", "bytes", "sha256", "updated_at", "tone_id")

    def __init__(self, item, active):
        values = list(item) + [None] * (len(self.FIELDS) - len(item))
        for name, value in zip(self.FIELDS, values):
            setattr(self, name, value)
        if isinstance(self.sha256, bytes):
            self.sha256 = self.sha256.hex()
        self.active = self.id == active

    def to_json(self):
        data = {name: getattr(self, name) for name in self.FIELDS}
        data["active"] = self.active
        return data


class PushResult:
    def __init__(self, model_id, size, sha256, resumed_from, sent, resent, elapsed_s, compressed_frames, rewinds,
                 timeouts, resumes):
        self.model_id = model_id
        self.size = size
        self.sha256 = sha256
        self.resumed_from = resumed_from
        self.sent = sent  # payload bytes sent in this call (resent included)
        self.resent = resent
        self.elapsed_s = elapsed_s
        self.compressed_frames = compressed_frames
        self.rewinds = rewinds
        self.timeouts = timeouts
        self.resumes = resumes

    def to_json(self):
        return dict(self.__dict__)


class PedalLink:
    """A session with a pedal over an open port (a pyserial Serial, or anything with
    fileno()).  Not thread-safe: one user at a time, like the port itself."""

    def __init__(self, port, rto_s=RTO_S, retries=RETRIES, compress=True, clock=time.monotonic):
        self.port = port
        self.fd = port.fileno()
        self.rto_s = rto_s
        self.retries = retries
        self.compress = compress
        self.clock = clock
        self.decoder = Decoder(64 * 1024)
        self.seq = random.randrange(0x10000)
        self.info = None
        self.last_io = None
        self.last_seq = None  # of the last request answered
        self.sender = None  # of the last transfer (what it sent, also after a failure)
        self.stats = {"wire_out": 0, "wire_in": 0}
        os.set_blocking(self.fd, False)

    # -- opening and closing -------------------------------------------------------

    @classmethod
    def open_port(cls, port, baud=DEFAULT_BAUD, **kw):
        """Open `port` ("auto" finds one) and HELLO; the link owns the port from then on."""
        from tonebridge.link import ports as serialport

        serial = serialport.open_port(serialport.resolve_port(port), baud)
        try:
            pedal = cls(serial, **kw)
            pedal.hello()
        except BaseException:
            serial.close()
            raise
        return pedal

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        # BYE unless the link itself broke (a refusal by the pedal leaves the link fine)
        broken = isinstance(value, (OSError, LinkBroken))
        self.close(bye=not broken)

    def close(self, bye=True):
        try:
            if bye and self.info is not None:
                try:
                    self.request(link.BYE, retries=1)
                except (LinkError, OSError):
                    pass
        finally:
            self.info = None
            self.port.close()

    # -- bytes -------------------------------------------------------------------------

    def _next_seq(self):
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def _write(self, data, deadline):
        view = memoryview(data)
        while view:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise LinkBroken("the pedal is not reading (write timed out)")
            _, writable, _ = select.select([], [self.fd], [], remaining)
            if writable:
                view = view[self._send(view):]

    def _send(self, view):
        try:
            count = os.write(self.fd, view)
        except BlockingIOError:
            return 0
        except OSError as error:
            raise LinkBroken("the serial port failed: %s (unplugged?)" % (error.strerror or error)) from None
        self.stats["wire_out"] += count
        self.last_io = self.clock()
        return count

    def _read(self, timeout):
        """Frames that arrive within `timeout` seconds (maybe none)."""
        readable, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not readable:
            return []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        except OSError as error:
            raise LinkBroken("the serial port failed: %s (unplugged?)" % (error.strerror or error)) from None
        if not data:
            raise LinkBroken("the serial port was closed (unplugged?)")
        self.stats["wire_in"] += len(data)
        return [(kind, seq, bytes(payload)) for kind, seq, payload in self.decoder.feed(data)]

    # -- requests ----------------------------------------------------------------------

    def hello(self):
        """Open a session.  The HELLO frame must not hold 0x03: until it arrives, the
        pedal's console takes that byte for Ctrl-C.  A fresh nonce fixes that."""
        for _ in range(self.retries + 1):
            while True:
                nonce = random.randrange(1 << 30)
                seq = self._next_seq()
                wire = link.control(seq, link.HELLO, {link.K_VERSION: link.VERSION, link.K_NONCE: nonce})
                if 3 not in wire:
                    break
            self._write(b"\x00" + wire, self.clock() + self.rto_s * 4)
            reply = self._wait_reply(seq, self.rto_s)
            if reply is None:
                continue
            if reply.get(link.K_TYPE) == link.ERROR:
                raise _error(reply)
            if reply.get(link.K_NONCE) != nonce:
                continue  # an old session's answer
            self.info = {
                "board": reply.get(link.K_BOARD), "free_bytes": reply.get(link.K_FREE),
                "firmware": reply.get(link.K_FIRMWARE), "max_frame": reply.get(link.K_MAX_FRAME),
                "window": reply.get(link.K_WINDOW), "rx_buffer": reply.get(link.K_RX_BUFFER),
                "deflate": bool(reply.get(link.K_DEFLATE)), "protocol": reply.get(link.K_VERSION),
            }
            return self.info
        raise LinkBroken("no answer from a pedal on this port (is the tonebridge firmware running?)")

    def _wait_reply(self, seq, timeout):
        deadline = self.clock() + timeout
        while True:
            for kind, frame_seq, payload in self._read(deadline - self.clock()):
                if kind == link.CONTROL and frame_seq == seq:
                    try:
                        return link.parse_control(payload)
                    except Exception:
                        return None
            if self.clock() >= deadline:
                return None

    def request(self, kind, fields=None, retries=None):
        """Send a control request and return the pedal's reply (a dict); LinkError on an
        ERROR reply (with its .code) or when the pedal does not answer."""
        if self.info is None or (kind != link.BYE and self.last_io is not None and self.clock() - self.last_io > IDLE_S):
            self.hello()  # the pedal has closed an idle session by now
        seq = self._next_seq()
        wire = link.control(seq, kind, fields)
        tries = (self.retries if retries is None else retries) + 1
        for _ in range(tries):
            self._write(wire, self.clock() + self.rto_s * 4)
            reply = self._wait_reply(seq, self.rto_s)
            if reply is None:
                continue
            if reply.get(link.K_TYPE) == link.ERROR:
                if reply.get(link.K_CODE) == link.E_NO_SESSION:  # the pedal restarted
                    self.hello()
                    seq = self._next_seq()
                    wire = link.control(seq, kind, fields)
                    continue
                raise _error(reply)
            self.last_seq = seq
            return reply
        raise LinkBroken("the pedal stopped answering (no reply to a request %d times)" % tries)

    # -- operations ----------------------------------------------------------------

    def models(self):
        """([PedalModel], active id) of everything installed."""
        items = []
        start = 0
        limit = None  # as many as fit in a frame; fewer after a page got lost on a noisy line
        while True:
            try:
                fields = {link.K_START: start} if limit is None else {link.K_START: start, link.K_LIMIT: limit}
                reply = self.request(link.LIST, fields, retries=2 if limit != 1 else None)
            except LinkError as error:
                if (isinstance(error, PedalRefused) and error.code != link.E_BUSY) or limit == 1:
                    raise  # (busy: the pedal was short of memory for a big page)
                limit = 4 if limit is None else max(1, limit // 2)
                continue
            page = reply.get(link.K_MODELS) or []
            active = reply.get(link.K_ACTIVE)
            items += page
            start += len(page)
            if not page or start >= (reply.get(link.K_TOTAL) or 0):
                break
        return [PedalModel(item, active) for item in items], active

    def stat(self, model_id, size=None, sha256=None):
        reply = self.request(link.STAT, {link.K_ID: model_id, link.K_SIZE: size, link.K_SHA: sha256})
        return reply.get(link.K_OFFSET) or 0, bool(reply.get(link.K_INSTALLED))

    def delete(self, model_id):
        self.request(link.DELETE, {link.K_ID: model_id})

    def activate(self, model_id):
        self.request(link.ACTIVATE, {link.K_ID: model_id})

    def push(self, path, model_id, name=None, platform=None, tone_id=None, size_class=None, updated_at=None,
             progress=None, sha256=None):
        """Send the file at `path` as model `model_id`; the pedal verifies and installs it.

        Resumes where the pedal's .part of the same file ends (also after a lost session,
        up to RESUMES times).  `progress(done, total)` is called as ACKs arrive.
        Returns a PushResult.
        """
        try:
            size = os.path.getsize(path)
            handle = open(path, "rb")
        except OSError as error:
            raise UsageError("cannot read %s: %s" % (path, error.strerror or error)) from None
        with handle:
            if sha256 is None:
                digest = hashlib.sha256()
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
                sha256 = digest.digest()
            fields = {link.K_ID: model_id, link.K_SIZE: size, link.K_SHA: sha256,
                      link.K_NAME: name or os.path.basename(path), link.K_PLATFORM: platform, link.K_TONE: tone_id,
                      link.K_CLASS: size_class, link.K_UPDATED: updated_at, link.K_FILENAME: os.path.basename(path)}
            fields = {key: value for key, value in fields.items() if value is not None}
            started = self.clock()
            totals = {"sent": 0, "resent": 0, "compressed": 0, "rewinds": 0, "timeouts": 0}
            resumed_from = None
            for attempt in range(RESUMES + 1):
                reply = self.request(link.PUT, fields)
                offset = reply.get(link.K_OFFSET) or 0
                if resumed_from is None:
                    resumed_from = offset
                sender = self._send_file(handle, size, offset, progress, totals)
                if sender is not None:
                    break
            else:
                raise LinkBroken("the pedal lost the transfer %d times; giving up" % (RESUMES + 1))
            reply = self.request(link.COMMIT, {link.K_ID: model_id})
            if reply.get(link.K_SHA) != sha256:
                raise PedalRefused("the pedal installed something else than was sent (SHA-256 differs)", link.E_INTEGRITY)
            return PushResult(model_id, size, sha256.hex(), resumed_from, totals["sent"], totals["resent"],
                              self.clock() - started, totals["compressed"], totals["rewinds"], totals["timeouts"],
                              attempt)

    def _send_file(self, handle, size, offset, progress, totals):
        """Stream the file from `offset` until the pedal has all of it; the Sender, or
        None when the pedal lost the transfer (it restarted: PUT again)."""
        info = self.info
        now_ms = lambda: int(self.clock() * 1000)  # noqa: E731
        self.sender = sender = link.Sender(
            size, offset, info["max_frame"], info["window"], info["rx_buffer"], rto_ms=int(self.rto_s * 1000),
            max_failures=self.retries + 3, now_ms=now_ms(), anchor=self.last_seq)
        compress = self.compress and info.get("deflate")
        skip_compress = 0
        pending = bytearray()
        fresh = True  # `pending` holds no partly written frame
        rewinds = sender.rewinds
        reported = -1
        try:
            while not sender.done():
                # Queue a frame when nothing waits; on a link with flow control of its
                # own (no rx_buffer) queue up to BATCH_BYTES, for fewer, larger writes.
                while not pending or (not info["rx_buffer"] and len(pending) < BATCH_BYTES):
                    chunk = sender.next_chunk()
                    if chunk is None:
                        break
                    at, count = chunk
                    handle.seek(at)
                    data = handle.read(count)
                    if len(data) != count:
                        raise UsageError("the file changed while it was being sent")
                    kind = link.DATA
                    if compress and skip_compress == 0:
                        packed = _deflate(data)
                        if len(packed) < len(data) * COMPRESS_BELOW:
                            data, kind = packed, link.DEFLATE
                            totals["compressed"] += 1
                        else:
                            skip_compress = 16  # incompressible: look again later
                    elif skip_compress:
                        skip_compress -= 1
                    seq = self._next_seq()
                    wire = link.data_frame(seq, at, data, kind)
                    sender.data_queued(seq, at, count, len(wire))
                    totals["sent"] += count
                    if not pending:
                        fresh = True  # (a frame cut by a rewind is only ever at the front)
                    pending += wire
                budget = min(len(pending), sender.budget())
                timeout = 0.05 if pending and budget <= 0 else 0.2
                readable, writable, _ = select.select([self.fd], [self.fd] if budget > 0 else [], [], timeout)
                if writable:
                    written = self._send(memoryview(pending)[:budget])
                    if written:
                        del pending[:written]
                        sender.written(written)
                        fresh = False if pending else True
                if readable:
                    for kind, _seq, payload in self._read(0):
                        if kind == link.ACK:
                            sender.on_ack(*link.parse_ack(payload), now_ms=now_ms())
                sender.check(now_ms())
                if sender.lost:
                    return None
                if sender.rewinds != rewinds:  # go back: forget queued frames
                    rewinds = sender.rewinds
                    sender.queued -= len(pending)  # never written
                    if pending and not fresh:
                        pending[:] = b"\x00"  # end the frame cut in the middle
                        sender.queued += 1
                    else:
                        pending.clear()
                    fresh = True
                if progress is not None and sender.acked != reported:
                    reported = sender.acked
                    progress(sender.acked, size)
            return sender
        finally:
            totals["resent"] += sender.resent
            totals["rewinds"] += sender.rewinds
            totals["timeouts"] += sender.timeouts


def _deflate(data):
    packer = zlib.compressobj(6, zlib.DEFLATED, -9)
    return packer.compress(data) + packer.flush()


def _error(reply):
    code = reply.get(link.K_CODE)
    message = reply.get(link.K_MESSAGE) or "error %s" % code
    return PedalRefused("the pedal refused: %s" % message, code)

