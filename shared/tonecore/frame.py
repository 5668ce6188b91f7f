"""Frames of the USB serial link: COBS-encoded, 0x00-delimited, CRC32-checked.

On the wire every frame is COBS(raw) followed by one 0x00 byte; a frame never contains
0x00, so a receiver that lost its place (garbage, a dropped byte) is back in step at the
next 0x00.  The raw frame is

    kind (1 byte) | seq (2 bytes, little-endian) | payload | CRC32 (4 bytes, LE)

where the CRC32 (the zlib/`binascii.crc32` one) covers kind, seq and payload.  docs/protocol.md
has the kinds and payloads.

`Decoder` turns a byte stream into frames.  It decodes COBS on the fly into one buffer
allocated up front (`max_frame` bytes), so a frame longer than that is dropped as it
arrives, before anything is allocated for it; the CRC is checked before the frame is
handed out.  Nothing here raises on bad input: damaged frames are counted and skipped.
"""

from binascii import crc32

HEADER = 3  # kind + seq
TRAILER = 4  # CRC32
OVERHEAD = HEADER + TRAILER
# Wire bytes a frame costs beyond its payload: header, CRC, the COBS code byte that
# starts it (one more per 254 bytes without a zero) and the delimiter.
WIRE_OVERHEAD = OVERHEAD + 2


def cobs_encode(raw, spare=0):
    """COBS-encode `raw` (bytes or bytearray): the result has no 0x00 byte.

    The result is allocated once, for the longest encoding, and cut to its length in
    place; `spare` zero bytes follow (encode() leaves one there: the delimiter)."""
    view = memoryview(raw)
    size = len(raw)
    out = bytearray(size + size // 254 + 1 + spare)
    at = pos = 0
    while True:
        zero = raw.find(b"\x00", pos)
        end = size if zero < 0 else zero
        while end - pos >= 254:
            out[at] = 255
            out[at + 1:at + 255] = view[pos:pos + 254]
            at += 255
            pos += 254
        count = end - pos
        out[at] = count + 1
        out[at + 1:at + 1 + count] = view[pos:end]
        at += count + 1
        if zero < 0:
            out[at + spare:] = b""  # (in place: no second buffer)
            return out
        pos = zero + 1


def encode(kind, seq, payload=b"", head=b""):
    """The wire bytes of one frame: COBS(kind, seq, head + payload, CRC32) + 0x00.

    `head` goes in front of `payload` (a DATA frame's offset): the raw frame is built
    once, at its size, and encoded into one more buffer (two allocations per frame).
    """
    count = len(head) + len(payload)
    raw = bytearray(HEADER + count + TRAILER)
    raw[0] = kind
    raw[1] = seq & 0xFF
    raw[2] = (seq >> 8) & 0xFF
    at = HEADER + len(head)
    raw[HEADER:at] = head
    raw[at:HEADER + count] = payload
    at = HEADER + count
    crc = crc32(memoryview(raw)[:at]) & 0xFFFFFFFF
    raw[at] = crc & 0xFF
    raw[at + 1] = (crc >> 8) & 0xFF
    raw[at + 2] = (crc >> 16) & 0xFF
    raw[at + 3] = crc >> 24
    return cobs_encode(raw, 1)


class Decoder:
    """Frames from a byte stream.

    Args:
        max_frame: the largest raw frame accepted (header + payload + CRC), in bytes;
            the decoder's only buffer has this size.

    Use `feed(data[, end])` as a generator: it yields `(kind, seq, payload)` for each
    good frame in `data[:end]` (bytes or bytearray), payload being a memoryview into the decoder's buffer that stays
    valid until the generator is resumed.  Counters: `frames` (good), `bad_crc`,
    `bad_cobs`, `too_long`, `too_short`; `pulled` counts the bytes fed since the last
    good frame ended (flow control uses it).
    """

    def __init__(self, max_frame):
        self.max_frame = max_frame
        self.buf = bytearray(max_frame)
        self.view = memoryview(self.buf)
        self.frames = self.bad_crc = self.bad_cobs = self.too_long = self.too_short = 0
        self.pulled = 0
        self.reset()

    def reset(self):
        """Forget a frame in progress (the next byte starts a new one)."""
        self.size = 0  # decoded bytes of the frame in progress
        self.run = 0  # literal bytes left in the current COBS block
        self.zero = False  # the current block ends with a zero (written when the next starts)
        self.started = False  # a byte of this frame has arrived
        self.skip = False  # the frame is already known bad: ignore it up to the delimiter

    def feed(self, data, end=None):
        """Decode `data[:end]` (bytes or bytearray); a generator of good frames."""
        if end is None:
            end = len(data)
        view = memoryview(data)
        pos = 0
        while pos < end:
            stop = data.find(b"\x00", pos, end)
            if stop < 0:
                self._take(view[pos:end])
                self.pulled += end - pos
                return
            self._take(view[pos:stop])
            self.pulled += stop + 1 - pos
            pos = stop + 1
            frame = self._finish()
            if frame is not None:
                self.pulled = 0
                yield frame

    def _take(self, chunk):
        """COBS-decode `chunk` (no delimiter in it) into the frame in progress."""
        if self.skip or not len(chunk):
            self.started = self.started or bool(len(chunk))
            return
        self.started = True
        buf = self.view
        size = self.size
        pos = 0
        end = len(chunk)
        while pos < end:
            if self.run == 0:  # a code byte starts the next block
                if self.zero:
                    if size >= self.max_frame:
                        self._drop_long()
                        return
                    buf[size] = 0
                    size += 1
                code = chunk[pos]
                pos += 1
                self.run = code - 1
                self.zero = code < 255
                continue
            count = self.run if self.run < end - pos else end - pos
            if size + count > self.max_frame:
                self._drop_long()
                return
            buf[size:size + count] = chunk[pos:pos + count]
            size += count
            pos += count
            self.run -= count
        self.size = size

    def _drop_long(self):
        self.too_long += 1
        self.skip = True

    def _finish(self):
        """At a delimiter: the frame in progress, checked, or None."""
        skip, started, run, size = self.skip, self.started, self.run, self.size
        self.reset()
        if skip or not started:  # a frame too long (counted) or two delimiters in a row
            return None
        if run:
            self.bad_cobs += 1  # the last block was cut short
            return None
        if size < OVERHEAD:
            self.too_short += 1
            return None
        view = self.view
        crc = view[size - 4] | view[size - 3] << 8 | view[size - 2] << 16 | view[size - 1] << 24
        if crc32(view[:size - 4]) & 0xFFFFFFFF != crc:
            self.bad_crc += 1
            return None
        self.frames += 1
        return view[0], view[1] | view[2] << 8, view[3:size - 4]

    def errors(self):
        """Damaged frames seen so far."""
        return self.bad_crc + self.bad_cobs + self.too_long + self.too_short
