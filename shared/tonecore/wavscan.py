"""A streaming walk over a WAV file's chunks (tonecore.formats): is it an impulse
response an IR loader takes?

The walk reads the RIFF header, then each chunk's 8-byte header, skipping chunks it does
not need by their size (JUNK, LIST, fact...: never read, however long), the first 40
bytes of "fmt ", and stops at "data".  Only the header piece being collected is kept.
"""

import struct

IR_RATES = (44100, 48000, 88200, 96000)  # the sample rates an IR loader takes


class WavScan:
    """Feed it a file's bytes in order; `problem(total)` at the end."""

    def __init__(self):
        self.error = None  # the first problem (sticky)
        self.seen = 0
        self.buf = bytearray()  # the header piece being collected
        self.want = (0, 12)  # (its file offset, its length); None: the walk is over
        self.next_chunk = self.riff_size = self.fmt = self.data = None

    def feed(self, data):
        start = self.seen
        end = self.seen = start + len(data)
        while self.want is not None and self.error is None:
            offset, length = self.want
            have = offset + len(self.buf)
            if have >= end:
                return
            self.buf += data[have - start:min(offset + length, end) - start]
            if len(self.buf) < length:
                return
            piece = bytes(self.buf)
            self.buf = bytearray()
            self.want = None
            if length == 12:  # (a fmt piece is 16 to 40 bytes: the length says which piece it is)
                self._riff(piece)
            elif length == 8:
                self._chunk(offset, piece)
            else:
                self._format(piece)

    def problem(self, total):
        """What is wrong with the `total` bytes fed, or None."""
        if self.error is not None or self.riff_size is None:
            return self.error or "no RIFF/WAVE header"
        if self.riff_size + 8 != total:
            return "truncated or padded: RIFF says %d bytes, got %d" % (self.riff_size + 8, total)
        if self.data is None:
            return "no data chunk" if self.fmt is not None else "no fmt chunk"
        if self.data[0] + self.data[1] > total:
            return "its data chunk runs past the end of the file"
        if self.data[1] < self.fmt[1] * self.fmt[3] // 8:
            return "no samples"
        return None

    def _riff(self, head):
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            self.error = "no RIFF/WAVE header"
        else:
            self.riff_size = struct.unpack("<I", head[4:8])[0]
            self.want = (12, 8)

    def _chunk(self, offset, head):
        size = struct.unpack("<I", head[4:8])[0]
        after = offset + 8 + size + (size & 1)  # chunks are padded to an even length
        if head[:4] == b"fmt ":
            if size < 16:
                self.error = "a fmt chunk of %d bytes" % size
            self.next_chunk = after
            self.want = (offset + 8, min(size, 40))
        elif head[:4] != b"data":
            self.want = (after, 8)  # JUNK, LIST, fact...: skipped
        elif self.fmt is None:
            self.error = "no fmt chunk before the data"
        else:
            self.data = (offset + 8, size)  # the walk ends here

    def _format(self, body):
        tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag
            tag = struct.unpack("<H", body[24:26])[0]
        if tag != 1 and tag != 3:
            self.error = "sample format %d (PCM or float)" % tag
        elif bits not in ((16, 24, 32) if tag == 1 else (32,)):
            self.error = "%d-bit %s samples (%s)" % (bits, "PCM" if tag == 1 else "float",
                                                      "16, 24 or 32-bit" if tag == 1 else "32-bit")
        elif channels != 1 and channels != 2:
            self.error = "%d channels (1 or 2)" % channels
        elif rate not in IR_RATES:
            self.error = "%d Hz (%s Hz)" % (rate, ", ".join([str(r) for r in IR_RATES]))
        elif align != channels * bits // 8:
            self.error = "blocks of %d bytes for %d channels of %d bits" % (align, channels, bits)
        else:
            self.fmt = (tag, channels, rate, bits)
            self.want = (self.next_chunk, 8)
