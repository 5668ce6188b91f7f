"""An in-memory serial link for the core's link tests (runs on CPython and MicroPython).

`Line` moves bytes host -> pedal at a line rate into a receive ring of a given size that
drops on overflow (an ESP32 REPL UART), with byte drops, bit flips and cuts at given
positions; its buffers are allocated up front.  `SimLink` joins the real host end
(`tonecore.linkhost.HostEnd`) to a `PedalEnd` over a Line and runs them in simulated
milliseconds; the way back is loss-free unless a test filters it (`Recorder` notes
the pedal's replies and loses those a test says to).
"""

import random

from tonecore import link
from tonecore.frame import Decoder
from tonecore.linkhost import HostEnd


class Fifo:
    """A byte FIFO in one buffer allocated up front."""

    def __init__(self, capacity):
        self.buf = bytearray(capacity)
        self.head = 0
        self.count = 0

    def room(self):
        return len(self.buf) - self.count

    def put(self, data, count):
        """Append `data[:count]` as far as there is room; returns how much was taken."""
        count = min(count, self.room())
        size = len(self.buf)
        tail = (self.head + self.count) % size
        first = min(count, size - tail)
        view = memoryview(data)
        self.buf[tail:tail + first] = view[:first]
        self.buf[:count - first] = view[first:count]
        self.count += count
        return count

    def take_into(self, out, count):
        """Move up to `count` bytes to the start of bytearray `out`; returns how many."""
        count = min(count, self.count, len(out))
        size = len(self.buf)
        first = min(count, size - self.head)
        view = memoryview(self.buf)
        out[:first] = view[self.head:self.head + first]
        out[first:count] = view[:count - first]
        self.head = (self.head + count) % size
        self.count -= count
        return count


class Line:
    """host -> pedal at `rate` bytes per ms into a `ring`-byte receive buffer that drops
    what does not fit (0: one that holds 8 ms of line, as good as endless for a pedal
    that reads every millisecond).

    Faults, seeded: `drop` and `ber` per byte; `cuts`: (position, count) ranges of the
    host's byte stream that never arrive.  `queue` holds what the host wrote and the
    line has not carried yet (two milliseconds' worth)."""

    def __init__(self, rate=12, ring=260, drop=0.0, ber=0.0, seed=1, cuts=()):
        self.rate = rate
        self.queue = Fifo(rate * 2)
        self.ring = Fifo(ring or rate * 8)
        self.scratch = bytearray(rate)
        self.drop = drop
        self.ber = ber
        self.cuts = cuts
        self.rng = random.Random(seed) if hasattr(random, "Random") else None
        if self.rng is None:
            random.seed(seed)
        self.position = 0  # bytes of the host's stream the line has carried (or lost)
        self.overflow = 0
        self.dropped = 0
        self.flipped = 0

    def _random(self):
        return self.rng.random() if self.rng else random.random()

    def _lost(self, position):
        for start, count in self.cuts:
            if start <= position < start + count:
                return True
        return self.drop and self._random() < self.drop

    def tick(self):
        """One millisecond of line time."""
        data = self.scratch
        count = self.queue.take_into(data, self.rate)
        if not count:
            return
        if self.drop or self.ber or self.cuts:
            kept = 0
            for at in range(count):
                byte = data[at]
                self.position += 1
                if self._lost(self.position - 1):
                    self.dropped += 1
                    continue
                if self.ber and self._random() < self.ber * 8:
                    byte ^= 1 << int(self._random() * 8)
                    self.flipped += 1
                data[kept] = byte
                kept += 1
            count = kept
        else:
            self.position += count
        self.overflow += count - self.ring.put(data, count)


class Nonces:
    """A HostEnd's random_bits that give the same nonces and seqs every run (so a test
    run, its heap included, is reproducible)."""

    def __init__(self, seed=1):
        self.state = seed

    def __call__(self, bits):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return self.state >> (31 - bits)


class SimLink:
    """A HostEnd and a PedalEnd joined by a Line, run a simulated millisecond at a time.

    Args:
        pedal: the PedalEnd.
        line: the Line (default: 115200 baud into a UART's 260-byte ring).
        host: the HostEnd (default: RTO 300 ms, sizes for a small heap, Nonces).
        stall: (from_ms, to_ms) while the pedal reads nothing (a long flash write).
        deliver: a function(bytes) -> bool that decides whether an answer of the pedal
            reaches the host (default: all do).
    """

    def __init__(self, pedal, line=None, host=None, stall=None, deliver=None):
        self.pedal = pedal
        self.line = line or Line()
        self.host = host or HostEnd(rto_ms=300, batch_bytes=1024, max_reply=1200, random_bits=Nonces())
        self.stall = stall
        self.deliver = deliver
        self.inbox = bytearray(len(self.line.ring.buf))
        self.now = 0

    def run(self, max_ms=200000):
        """Run until the host's operation ends; its result (raises its error).  An
        AssertionError when it takes longer than `max_ms`."""
        limit = self.now + max_ms
        while not self.host.done():
            if self.now >= limit:
                raise AssertionError("the link took more than %d ms" % max_ms)
            self.step()
        return self.host.result()

    def step(self):
        self.now += 1
        now, host, line, pedal = self.now, self.host, self.line, self.pedal
        room = line.queue.room()
        if room:
            data = host.to_write(room)
            if data:
                host.written(line.queue.put(data, len(data)))
        line.tick()
        stalled = self.stall and self.stall[0] <= now < self.stall[1]
        if not stalled and line.ring.count:  # the pedal reads every millisecond
            count = line.ring.take_into(self.inbox, len(self.inbox))
            answer = pedal.receive(self.inbox, now, count)
            if answer and (self.deliver is None or self.deliver(answer)):
                host.receive(answer, now)
        if not stalled:
            pedal.tick(now)
        host.tick(now)

    def request(self, kind, fields=None, max_ms=200000):
        self.host.request(kind, fields, self.now)
        return self.run(max_ms)

    def push(self, file, model_id=1, meta=None, max_ms=200000):
        """Push `file` (a memorypedal.Blob) as model `model_id` (PUT fields `meta` added);
        a PushResult."""
        fields = {link.K_ID: model_id, link.K_SIZE: len(file), link.K_SHA: file.sha256(),
                  link.K_NAME: "m%d" % model_id, link.K_PLATFORM: "nam", link.K_FILENAME: "m.nam"}
        if meta:
            fields.update(meta)
        self.host.push(fields, file.read, self.now)
        return self.run(max_ms)


def push(pedal, file, model_id=1, line=None, meta=None, max_ms=200000, **kw):
    """Push `file` into `pedal` over a fresh SimLink (HELLO, PUT, DATA, COMMIT);
    returns (PushResult, the SimLink)."""
    sim = SimLink(pedal, line, **kw)
    return sim.push(file, model_id, meta, max_ms), sim


def frames(data, max_frame=1100):
    """[(kind, seq, payload bytes)] of the frames in `data`."""
    return [(kind, seq, bytes(payload)) for kind, seq, payload in Decoder(max_frame).feed(bytes(data))]


class Recorder:
    """A SimLink `deliver` that notes the type (or error code) of every control reply the
    pedal sends and loses those `lose` says to."""

    def __init__(self, lose=None):
        self.seen = []  # (seq, type, error code)
        self.lose = lose
        self.decoder = Decoder(1100)  # (one buffer for every answer)

    def __call__(self, answer):
        deliver = True
        for kind, seq, payload in self.decoder.feed(answer):
            if kind == link.CONTROL:
                reply = link.parse_control(payload)
                self.seen.append((seq, reply[link.K_TYPE], reply.get(link.K_CODE)))
                if self.lose is not None and self.lose(reply, answer):
                    deliver = False
        return deliver

    def types(self):
        return [kind for _, kind, _ in self.seen]
