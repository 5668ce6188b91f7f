"""The pedal's end in RAM for the core's link tests (runs on CPython and MicroPython).

`MemoryStore` is a model library in RAM with the store interface `tonecore.link.PedalEnd`
calls.  A .part is a `Blocks`: equal small blocks, each allocated once when the data
reaches it and kept for a resume (resume = keep the flushed prefix).  Nothing grows or
moves, and no large contiguous piece of heap is ever needed, so the tests do not depend
on how a 128 KB heap happens to fragment (and a fuzzed PUT announcing a gigabyte costs
nothing until data arrives).  Test files (`Blob`) are made as they are read.

Also: `uart_pedal()` (a PedalEnd with a UART's link settings), `pedal_reply()` (a
request straight into a pedal, no host end).
"""

import hashlib
import sys

from tonecore import link
from tonecore.errors import PedalRefused, ToneError
from tonecore.frame import Decoder

# MicroPython runs the link tests in a 128 KB heap: smaller files there
SCALE = 8 if sys.implementation.name == "micropython" else 1
BLOCK = 256  # bytes per block of a file in RAM
CHAIN = 32  # bytes per link of a Blob's SHA-256 chain


class Blob:
    """A test file of `size` bytes, made as it is read (no buffer of its size): `zeros`
    zero bytes (they deflate), then incompressible-looking bytes (a SHA-256 chain of
    `seed`; zeros and 0x03 included).  Sizes are divided by SCALE."""

    def __init__(self, size, seed=3, zeros=0):
        self.size = size // SCALE
        self.zeros = min(zeros // SCALE, self.size)
        self.seed = seed
        self.index = -1  # the chain link computed last, and its value
        self.link = bytes([seed])

    def __len__(self):
        return self.size

    def _chain(self, index):
        if index < self.index:  # read again from further back (a rewind): start over
            self.index, self.link = -1, bytes([self.seed])
        while self.index < index:
            self.link = hashlib.sha256(self.link).digest()
            self.index += 1
        return self.link

    def read(self, offset, count):
        """Up to `count` bytes from `offset` (a push's read callback)."""
        count = max(0, min(count, self.size - offset))
        out = bytearray(count)
        at = max(offset, self.zeros)  # (bytes before `zeros` stay 0)
        while at < offset + count:
            place = at - self.zeros
            start = place % CHAIN
            piece = min(CHAIN - start, offset + count - at)
            out[at - offset:at - offset + piece] = self._chain(place // CHAIN)[start:start + piece]
            at += piece
        return out

    def sha256(self):
        return sha256_of(self)

    def matches(self, stored):
        """True when `stored` (anything with len() and read(offset, count)) holds exactly
        this file."""
        if len(stored) != self.size:
            return False
        for at in range(0, self.size, BLOCK):
            if stored.read(at, BLOCK) != self.read(at, BLOCK):
                return False
        return True


def sha256_of(file):
    """The SHA-256 of anything with len() and read(offset, count), read a block at a time."""
    digest = hashlib.sha256()
    for at in range(0, len(file), BLOCK):
        digest.update(file.read(at, BLOCK))
    return digest.digest()


def blob(size, seed=3):
    """The bytes of Blob(size, seed) (for small files)."""
    return bytes(Blob(size, seed).read(0, size))


class Blocks:
    """Up to `size` bytes in BLOCK-sized bytearrays, each allocated when first written;
    `length` bytes are written (cutting it back keeps the blocks for the rewrite)."""

    def __init__(self, size):
        self.blocks = []
        self.size = size
        self.length = 0

    def __len__(self):
        return self.length

    def append(self, data):
        if self.length + len(data) > self.size:
            raise ValueError("a write past the model's size")
        view = memoryview(data)
        done = 0
        while done < len(data):
            block, start = divmod(self.length, BLOCK)
            piece = min(BLOCK - start, len(data) - done)
            if block == len(self.blocks):
                self.blocks.append(bytearray(BLOCK))
            self.blocks[block][start:start + piece] = view[done:done + piece]
            done += piece
            self.length += piece

    def read(self, offset, count):
        count = max(0, min(count, self.length - offset))
        out = bytearray(count)
        done = 0
        while done < count:
            block, start = divmod(offset + done, BLOCK)
            piece = min(BLOCK - start, count - done)
            out[done:done + piece] = memoryview(self.blocks[block])[start:start + piece]
            done += piece
        return out

    def sha256(self):
        return sha256_of(self)


class Full(ToneError):
    link_code = link.E_NO_SPACE


class Part:
    """A .part in RAM: `data` has room for the model; `durable` of its bytes are flushed
    (what survives a close)."""

    def __init__(self, meta):
        self.meta = meta
        self.data = Blocks(meta["size"])
        self.durable = 0

    def received(self):
        return bytes(self.data.read(0, len(self.data)))


class MemoryStore:
    def __init__(self, capacity=1 << 30):
        self.capacity = capacity
        self.installed = {}  # id -> (Blocks, meta, sha256)
        self.parts = {}  # id -> Part
        self.active = None
        self.current = None

    def info(self):
        return {"board": "memory", "free": self.capacity, "firmware": "test"}

    def model_count(self):
        return len(self.installed)

    def model_item(self, index):
        model_id = sorted(self.installed)[index]
        data, meta, digest = self.installed[model_id]
        return [model_id, meta["name"], meta["platform"], meta["size_class"], len(data), digest,
                meta["updated_at"], meta["tone_id"]]

    def active_model(self):
        return self.active

    def stat(self, model_id, size, sha):
        part = self.parts.get(model_id)
        offset = part.durable if part and part.meta["sha256"] == sha and part.meta["size"] == size else 0
        entry = self.installed.get(model_id)
        return offset, entry is not None and entry[2] == sha

    def open(self, meta):
        if meta["size"] > self.capacity:
            raise Full("not enough flash for model %d" % meta["id"])
        part = self.parts.get(meta["id"])
        if part is None or part.meta["sha256"] != meta["sha256"] or part.meta["size"] != meta["size"]:
            self.parts.pop(meta["id"], None)
            part = None  # a stale .part's blocks are garbage before new ones are allocated
            part = self.parts[meta["id"]] = Part(meta)
        part.data.length = part.durable  # only what was flushed survived
        self.current = part
        return part.durable

    def write(self, data):
        self.current.data.append(data)

    def flush(self):
        self.current.durable = len(self.current.data)

    def close(self):
        if self.current is not None:
            self.flush()
            self.current = None

    def commit(self):
        part = self.current
        self.current = None
        meta = part.meta
        digest = part.data.sha256()
        if len(part.data) != meta["size"] or digest != meta["sha256"]:
            raise PedalRefused("sha256 differs", link.E_INTEGRITY)
        del self.parts[meta["id"]]
        self._install(part.data, meta, digest)
        return digest

    def add_model(self, model_id, data):
        """Install `data` (bytes) as model `model_id` directly (a library set up for a test)."""
        blocks = Blocks(len(data))
        blocks.append(data)
        meta = {"id": model_id, "size": len(data), "name": "m%d" % model_id, "platform": "nam",
                "size_class": None, "updated_at": None, "tone_id": None}
        self._install(blocks, meta, hashlib.sha256(data).digest())

    def _install(self, data, meta, digest):
        self.installed[meta["id"]] = (data, meta, digest)
        if self.active is None:
            self.active = meta["id"]

    def delete(self, model_id):
        if model_id not in self.installed:
            raise PedalRefused("model %d is not installed" % model_id, link.E_NOT_FOUND)
        del self.installed[model_id]

    def activate(self, model_id):
        if model_id not in self.installed:
            raise PedalRefused("model %d is not installed" % model_id, link.E_NOT_FOUND)
        self.active = model_id


def uart_pedal(store=None, **kw):
    """A PedalEnd over `store` (default: a new MemoryStore) with a UART's settings."""
    kw.setdefault("max_frame", 1024 + 16)
    kw.setdefault("window", 2048)
    kw.setdefault("rx_buffer", 240)
    return link.PedalEnd(store or MemoryStore(), **kw)


def pedal_reply(pedal, seq, kind, fields=None, now=0):
    """One control request straight into the pedal (no line, no host end): its reply
    map.  For tests of the pedal's end that choose the seq themselves."""
    out = pedal.receive(bytes(link.control(seq, kind, fields)), now)
    for frame_kind, frame_seq, payload in Decoder(pedal.max_frame).feed(bytes(out)):
        if frame_kind == link.CONTROL and frame_seq == seq:
            return link.parse_control(payload)
    raise AssertionError("no reply to %d" % kind)


def hello(pedal, seq, now=0):
    """HELLO straight into the pedal: its reply."""
    return pedal_reply(pedal, seq, link.HELLO, {link.K_VERSION: link.VERSION, link.K_NONCE: 7}, now)
