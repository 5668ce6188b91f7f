"""The line model of the link emulator (tonebridge.dev.linkemu): one direction of a UART.

`Direction` is one direction of the line (its queue, its token bucket at baud/10 bytes
a second, its faults, its counts); `Faults` drops bytes and flips bits at given rates,
decided by a seeded generator so that a fault's position depends only on the byte
count.  The emulator's pump thread owns the timing and the file descriptors.
"""

import math

from tonecore.errors import UsageError

QUEUE_BYTES = 4096  # waiting inside the emulator per direction, like an adapter's buffer
MAX_CATCH_UP_S = 0.002  # line time a late tick may deliver at once


def line_rate(baud):
    """Bytes per second on a UART at `baud` (8N1: 10 bits a byte), None for unthrottled."""
    return None if baud is None else baud / 10.0


class Faults:
    """Byte drops and bit flips at given rates, decided by a seeded random generator.

    The distance to the next fault is drawn once per fault (geometric distribution), so
    the cost is per fault, not per byte, and the faults fall on the same byte positions
    however the stream is cut into slices.
    """

    def __init__(self, rng, drop_rate=0.0, ber=0.0):
        self.rng = rng
        self.configure(drop_rate, ber)

    def configure(self, drop_rate, ber):
        """Set the rates (probabilities per byte and per bit) and draw the next faults."""
        for name, rate in (("drop_rate", drop_rate), ("ber", ber)):
            if not 0.0 <= rate <= 1.0:
                raise UsageError("%s must be between 0 and 1, not %r" % (name, rate))
        self.drop_rate = drop_rate
        self.ber = ber
        self._bytes_to_drop = self._gap(drop_rate)  # good bytes before the next dropped one
        self._bits_to_flip = self._gap(ber)  # good bits before the next flipped one

    def _gap(self, probability):
        if probability <= 0.0:
            return None
        if probability >= 1.0:
            return 0
        return int(math.log(1.0 - self.rng.random()) / math.log1p(-probability))

    def apply(self, data):
        """Drop bytes from, then flip bits in, the bytearray `data`.

        Returns:
            (the bytes that survive, bytes dropped, bits flipped).
        """
        dropped = flipped = 0
        if self._bytes_to_drop is not None:
            kept = bytearray()
            start = 0
            while self._bytes_to_drop is not None and start + self._bytes_to_drop < len(data):
                index = start + self._bytes_to_drop
                kept += data[start:index]
                start = index + 1
                dropped += 1
                self._bytes_to_drop = self._gap(self.drop_rate)
            if self._bytes_to_drop is not None:
                self._bytes_to_drop -= len(data) - start
            if dropped:
                kept += data[start:]
                data = kept
        if self._bits_to_flip is not None:
            bits = len(data) * 8
            start = 0
            while self._bits_to_flip is not None and start + self._bits_to_flip < bits:
                index = start + self._bits_to_flip
                data[index >> 3] ^= 1 << (index & 7)
                start = index + 1
                flipped += 1
                self._bits_to_flip = self._gap(self.ber)
            if self._bits_to_flip is not None:
                self._bits_to_flip -= bits - start
        return data, dropped, flipped


class Direction:
    """One direction of the line: its queue, its token bucket, its faults, its counts."""

    def __init__(self, name, rate, faults):
        self.name = name
        self.rate = rate  # bytes/s, None: unthrottled
        self.faults = faults  # None: this direction is clean
        self.queue = bytearray()  # read from the source, not yet on the line
        self.out = bytearray()  # through the line, waiting for a back-pressuring sink
        self.tokens = 0.0
        self.last = None  # when the bucket was last filled
        self.backlog = False  # bytes were waiting at the last pump (the line was busy)
        self.blocked = False  # the sink refused bytes at the last pump
        self.delivered = self.dropped = self.flipped = self.discarded = 0

    def room(self):
        return QUEUE_BYTES - len(self.queue)

    def discard(self):
        self.discarded += len(self.queue) + len(self.out)
        del self.queue[:]
        del self.out[:]

    def refill(self, now):
        """Add the tokens earned since the last call; returns line seconds lost to a late tick."""
        late = 0.0
        if self.rate is not None and self.last is not None:
            tokens = self.tokens + (now - self.last) * self.rate
            cap = max(1.0, self.rate * MAX_CATCH_UP_S)
            if tokens > cap:
                if self.backlog and not self.blocked:  # bytes waited for the line, not for the sink
                    late = (tokens - cap) / self.rate
                tokens = cap
            self.tokens = tokens
        self.last = now
        return late
