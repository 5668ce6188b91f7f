"""An in-memory serial link for the core's link tests (runs on CPython and MicroPython).

`MemoryStore` is a model library in RAM with the store interface `tonecore.link.Pedal`
calls.  `Line` moves bytes host -> pedal at a line rate into a receive ring of a given
size that drops on overflow (an ESP32 REPL UART), with byte drops and bit flips; the
way back is loss-free.  `push()` drives a whole transfer in simulated milliseconds.
"""

import hashlib
import random

from tonecore import link
from tonecore.errors import LinkBroken, PedalRefused, ToneError
from tonecore.frame import Decoder


class Full(ToneError):
    link_code = link.E_NO_SPACE


class MemoryStore:
    def __init__(self, capacity=1 << 30):
        self.capacity = capacity
        self.installed = {}  # id -> (bytes, meta)
        self.parts = {}  # id -> [bytearray, meta, durable length]
        self.active = None
        self.current = None
        self.flushes = 0

    def info(self):
        return {"board": "memory", "free": self.capacity, "firmware": "test"}

    def model_count(self):
        return len(self.installed)

    def model_item(self, index):
        model_id = sorted(self.installed)[index]
        data, meta = self.installed[model_id]
        return [model_id, meta["name"], meta["platform"], meta["size_class"], len(data),
                hashlib.sha256(data).digest(), meta["updated_at"], meta["tone_id"]]

    def active_model(self):
        return self.active

    def stat(self, model_id, size, sha):
        part = self.parts.get(model_id)
        offset = part[2] if part and part[1]["sha256"] == sha and part[1]["size"] == size else 0
        entry = self.installed.get(model_id)
        installed = entry is not None and hashlib.sha256(entry[0]).digest() == sha
        return offset, installed

    def open(self, meta):
        if meta["size"] > self.capacity:
            raise Full("not enough flash for model %d" % meta["id"])
        part = self.parts.get(meta["id"])
        if part is None or part[1]["sha256"] != meta["sha256"] or part[1]["size"] != meta["size"]:
            part = self.parts[meta["id"]] = [bytearray(), meta, 0]
        part[0] = part[0][:part[2]]  # only what was flushed survived
        self.current = part
        return part[2]

    def write(self, data):
        self.current[0] += data

    def flush(self):
        self.current[2] = len(self.current[0])
        self.flushes += 1

    def close(self):
        if self.current is not None:
            self.flush()
            self.current = None

    def commit(self):
        part = self.current
        self.current = None
        data, meta = bytes(part[0]), part[1]
        digest = hashlib.sha256(data).digest()
        if len(data) != meta["size"] or digest != meta["sha256"]:
            raise PedalRefused("sha256 differs", link.E_INTEGRITY)
        del self.parts[meta["id"]]
        self.installed[meta["id"]] = (data, meta)
        if self.active is None:
            self.active = meta["id"]
        return digest

    def delete(self, model_id):
        if model_id not in self.installed:
            raise PedalRefused("model %d is not installed" % model_id, link.E_NOT_FOUND)
        del self.installed[model_id]

    def activate(self, model_id):
        if model_id not in self.installed:
            raise PedalRefused("model %d is not installed" % model_id, link.E_NOT_FOUND)
        self.active = model_id


class Line:
    """host -> pedal at `rate` bytes per ms into a `ring`-byte buffer; faults seeded."""

    def __init__(self, rate=12, ring=260, drop=0.0, ber=0.0, seed=1):
        self.rate = rate
        self.ring_size = ring
        self.queue = bytearray()  # sent by the host, not yet on the line
        self.ring = bytearray()  # arrived at the pedal, not yet read
        self.drop = drop
        self.ber = ber
        self.rng = random.Random(seed) if hasattr(random, "Random") else None
        if self.rng is None:
            random.seed(seed)
        self.overflow = 0
        self.dropped = 0
        self.flipped = 0

    def _random(self):
        return self.rng.random() if self.rng else random.random()

    def tick(self):
        """One millisecond of line time."""
        count = min(self.rate, len(self.queue))
        if not count:
            return
        chunk = self.queue[:count]
        self.queue = self.queue[count:]
        if self.drop or self.ber:
            out = bytearray()
            for byte in chunk:
                if self.drop and self._random() < self.drop:
                    self.dropped += 1
                    continue
                if self.ber and self._random() < self.ber * 8:
                    byte ^= 1 << int(self._random() * 8)
                    self.flipped += 1
                out.append(byte)
            chunk = out
        room = self.ring_size - len(self.ring) if self.ring_size else len(chunk)
        if len(chunk) > room:
            self.overflow += len(chunk) - room
            chunk = chunk[:room]
        self.ring += chunk


def hello(pedal, seq, now):
    """Open a session; returns the HELLO reply."""
    reply = request(pedal, seq, link.HELLO, {link.K_VERSION: link.VERSION, link.K_NONCE: 7}, now)
    return reply


def request(pedal, seq, kind, fields, now=0):
    """A control request straight into the pedal (no line); returns the reply map."""
    out = pedal.receive(bytes(link.control(seq, kind, fields)), now)
    decoder = Decoder(pedal.max_frame)
    for frame_kind, frame_seq, payload in decoder.feed(bytes(out)):
        if frame_kind == link.CONTROL and frame_seq == seq:
            return link.parse_control(payload)
    raise AssertionError("no reply to %d" % kind)


def push(pedal, data, model_id=1, line=None, read_every=1, max_ms=200000, seq=100, max_payload=None,
         stall=None, meta=None):
    """Push `data` through `line` into `pedal` in simulated ms; returns (sender, ms, reply)."""
    line = line or Line()
    sha = hashlib.sha256(data).digest()
    fields = {link.K_ID: model_id, link.K_SIZE: len(data), link.K_SHA: sha, link.K_NAME: "m%d" % model_id,
              link.K_PLATFORM: "nam", link.K_FILENAME: "m.nam"}
    if meta:
        fields.update(meta)
    info = hello(pedal, seq, 0)
    put = request(pedal, seq + 1, link.PUT, fields, 0)
    if put[link.K_TYPE] == link.ERROR:
        return None, 0, put
    sender = link.Sender(len(data), put[link.K_OFFSET], info[link.K_MAX_FRAME], info[link.K_WINDOW],
                         info[link.K_RX_BUFFER], max_payload=max_payload, rto_ms=300, anchor=seq + 1)
    host_decoder = Decoder(256)
    pending = bytearray()
    seq += 2
    now = 0
    while not sender.done():
        now += 1
        if now > max_ms:
            raise AssertionError("push did not finish in %d ms" % max_ms)
        if not pending:
            chunk = sender.next_chunk()
            if chunk is not None:
                offset, count = chunk
                wire = link.data_frame(seq, offset, data[offset:offset + count])
                sender.data_queued(seq, offset, count, len(wire))
                seq = (seq + 1) & 0xFFFF
                pending += wire
        allowed = min(len(pending), sender.budget(), line.rate * 2 - len(line.queue))
        if allowed > 0:
            line.queue += pending[:allowed]
            pending = pending[allowed:]
            sender.written(allowed)
        line.tick()
        if stall and stall[0] <= now < stall[1]:
            continue  # the pedal is busy (a long flash write): it reads nothing
        if now % read_every == 0 and line.ring:
            got = bytes(line.ring)
            line.ring = bytearray()
            out = pedal.receive(got, now)
            for kind, _, payload in host_decoder.feed(bytes(out)):
                if kind == link.ACK:
                    sender.on_ack(*(link.parse_ack(payload) + (now,)))
        pedal.tick(now)
        sender.check(now)
        if sender.lost:
            raise LinkBroken("lost: %r" % (pedal.failure,))
    reply = request(pedal, seq, link.COMMIT, {link.K_ID: model_id}, now)
    return sender, now, reply
