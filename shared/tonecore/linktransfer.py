"""One file's DATA stream on the USB link, as the host sends it (sans-IO; driven by
tonecore.linkhost.HostEnd, which owns the bytes).

Credit: the host remembers where in its byte stream each DATA frame ends; an ACK
(anchor, pulled) says how far the pedal has read, so `budget()` keeps the bytes it has
not read under its `rx_buffer`.  Window: data not acknowledged (`next`) stays under
`window`.  Losses: an ACK with the gap flag, or an RTO without progress, sends the
stream back to `next` (a rewind) with smaller frames, which grow again after clean ones.
docs/protocol.md, section 4, is the specification.
"""

from . import link
from .compat import const
from .errors import LinkBroken
from .frame import WIRE_OVERHEAD

MIN_PAYLOAD = const(64)  # after losses, DATA payloads shrink down to this
GROW_AFTER = const(16)  # clean frames before the payload size doubles again


class Transfer:
    """One file's DATA stream: which chunk goes next, how many wire bytes the pedal can
    take now, what to send again after a loss.

    Args:
        size: the file's length.
        offset: where the pedal resumes (its answer to PUT).
        max_frame, window, rx_buffer: from the pedal's HELLO.
        max_payload: the largest DATA payload to use (default: what max_frame allows).
        rto_ms: with data outstanding and no ACK for this long, send again from the
            last acknowledged offset.
        max_failures: give up (LinkBroken) after this many timeouts in a row.
        anchor: the seq of the last frame the pedal read before this transfer (the PUT
            it answered): wire positions count from the end of that frame.

    Counters: `acked` (the pedal's `next`), `sent`, `high` (the furthest offset sent),
    `durable`, `resent` (payload bytes sent more than once), `rewinds`, `timeouts`;
    `lost` is set when the pedal has no transfer open (it restarted: PUT again).
    """

    def __init__(self, size, offset, max_frame, window, rx_buffer, max_payload, rto_ms, max_failures, now_ms=0,
                 anchor=None):
        self.size = size
        self.acked = self.sent = self.high = self.durable = offset
        self.start = offset
        self.window = window
        self.rx_buffer = rx_buffer
        limit = max_frame - WIRE_OVERHEAD - link.DATA_HEADER
        self.max_payload = self.payload = min(max_payload or limit, limit)
        self.rto_ms = rto_ms
        self.max_failures = max_failures
        self.queued = 0  # wire bytes queued (the position after the last frame queued)
        self.written_total = 0  # wire bytes written
        self.read_through = 0  # wire position the pedal has read up to
        # seq -> wire position at the end of that frame, for frames an ACK may still name
        self.ends = {} if anchor is None else {anchor: 0}
        self.rewind_seq = None
        self.last_progress_ms = now_ms
        self.failures = 0
        self.clean = 0
        self.resent = 0
        self.rewinds = 0
        self.timeouts = 0
        self.lost = False

    def done(self):
        return self.acked >= self.size

    def next_chunk(self):
        """(offset, length) of the next DATA frame, or None while the window is full."""
        if self.sent >= self.size:
            return None
        count = min(self.payload, self.size - self.sent)
        if self.sent > self.acked and self.sent + count - self.acked > self.window:
            return None
        return self.sent, count

    def data_queued(self, seq, offset, count, wire_len):
        """A DATA frame of `count` payload bytes at `offset` was queued as frame `seq`."""
        self.queued += wire_len
        self.ends[seq] = self.queued
        if self.rewind_seq is None:
            self.rewind_seq = seq
        if offset < self.high:
            self.resent += min(count, self.high - offset)
        self.sent = offset + count
        if self.sent > self.high:
            self.high = self.sent

    def budget(self):
        """Wire bytes that may be written now without overrunning the pedal's buffer."""
        if not self.rx_buffer:
            return 1 << 30
        return self.rx_buffer - (self.written_total - self.read_through)

    def written(self, count):
        self.written_total += count

    def on_ack(self, anchor, pulled, nxt, durable, flags, now_ms):
        end = self.ends.get(anchor)
        if end is not None:
            if end + pulled > self.read_through:
                self.read_through = min(end + pulled, self.written_total)
                self.last_progress_ms = now_ms
            # The pedal reads frames in order: no later ACK names a frame before this one.
            for old in [s for s in self.ends if link.seq_after(anchor, s)]:
                del self.ends[old]
        if flags & link.F_NO_TRANSFER:
            self.lost = True
            return
        if nxt > self.acked and nxt <= self.sent:
            self.acked = nxt
            self.last_progress_ms = now_ms
            self.failures = 0
            self.clean += 1
            if self.clean >= GROW_AFTER and self.payload < self.max_payload:
                self.payload = min(self.payload * 2, self.max_payload)
                self.clean = 0
        if durable > self.durable:
            self.durable = durable
        if flags & link.F_GAP and self.rewind_seq is not None and not link.seq_after(self.rewind_seq, anchor):
            self._rewind()  # a frame sent since the last rewind was lost

    def check(self, now_ms):
        """After rto_ms without progress, send again from `acked` (or give up: LinkBroken)."""
        outstanding = self.sent > self.acked or self.written_total > self.read_through
        if not outstanding or now_ms - self.last_progress_ms < self.rto_ms:
            return
        self.failures += 1
        self.timeouts += 1
        if self.failures > self.max_failures:
            raise LinkBroken("the pedal stopped answering (%d timeouts in a row at offset %d)"
                             % (self.failures - 1, self.acked))
        self.read_through = self.written_total  # whatever was in flight is read or lost by now
        self.last_progress_ms = now_ms
        self._rewind()

    def _rewind(self):
        self.sent = self.acked
        self.rewinds += 1
        self.rewind_seq = None  # set by the next frame queued
        self.clean = 0
        if self.payload > MIN_PAYLOAD:
            self.payload = max(MIN_PAYLOAD, self.payload // 2)
