"""Write tests/core/frame_corpus.py: a saved corpus for tonecore.frame's Decoder.

    .venv/bin/python tests/properties/make_frame_corpus.py

(from the repository root; rerun it after changing the decoder, and commit the new
corpus).  tests/core/test_frame_corpus.py replays the corpus on CPython and under
MicroPython (whole, byte by byte, and from a reused buffer with `end`), so both
runtimes must decode every input the same way.

Where the inputs come from: hand-made edge cases (empty frames, frames that fill the
buffer exactly or pass it by one byte, zero-free runs of 253..255 bytes around a full
COBS block, delimiter runs, bad COBS, bad CRC, too short, garbage with and without a
delimiter before a frame), and hypothesis-generated streams: frames with garbage
between them, mutated streams of link frames (the mutations of test_frame_props.py),
arbitrary bytes.  Each generated input gets a behaviour key: the decoder's branches
it takes (the line-to-line arcs of tonecore/frame.py, traced while decoding it whole
and byte by byte), whether it yields frames and which counters it moves.  The corpus
keeps the shortest input of each key, so it covers every way the decoder can go and
still loads in a 128 KB MicroPython heap (where each bytes object or tuple costs 32
bytes and more: mind that before adding inputs).  Generation is derandomized: the
same hypothesis version writes the same corpus.  Every expected result is the
decoder's own on CPython, checked against test_frame_props's reference_decode before
it is saved.
"""

import os
import sys
from binascii import crc32

from hypothesis import given
from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "core"))

import tonecore.frame  # noqa: E402
from fuzzing import corpus_settings  # noqa: E402
from test_frame_props import (  # noqa: E402
    BYTE,
    GARBAGE,
    LINK_FRAME,
    MUTATION,
    frames_within,
    mutate,
    reference_decode,
    wire_of,
)
from tonecore.frame import OVERHEAD, Decoder, cobs_encode, encode  # noqa: E402

TARGET = os.path.join(HERE, "..", "core", "frame_corpus.py")
MAX_INPUT = 300
EXAMPLES = 1500  # hypothesis examples per source
# The buffer sizes generated inputs are tried with: below the 7-byte minimum, small,
# and around one full COBS block (254 bytes) plus the frame overhead.
MAX_FRAMES = (0, 1, 6, 7, 8, 9, 16, 33, 64, 253, 254, 255, 256, 262)
FRAME_PY = tonecore.frame.__file__


# ---------------------------------------------------------------- behaviour


def decode(data, max_frame, chunk=None):
    """(frames, (bad_crc, bad_cobs, too_long, too_short, pulled)) of a Decoder(max_frame)
    fed `data` whole or in chunks of `chunk` bytes."""
    decoder = Decoder(max_frame)
    frames = []
    step = chunk or max(1, len(data))
    for at in range(0, len(data), step):
        for kind, seq, payload in decoder.feed(data[at : at + step]):
            frames.append((kind, seq, bytes(payload)))
    counts = (decoder.bad_crc, decoder.bad_cobs, decoder.too_long, decoder.too_short, decoder.pulled)
    return frames, counts


def arcs_of(data, max_frame):
    """The (line, next line) pairs run in tonecore/frame.py while decoding `data` whole
    and byte by byte."""
    arcs = set()
    last = {}

    def local(frame, event, arg):
        if event == "line":
            arcs.add((last.get(frame), frame.f_lineno))
            last[frame] = frame.f_lineno
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code.co_filename == FRAME_PY else None

    sys.settrace(tracer)
    try:
        decode(data, max_frame)
        decode(data, max_frame, 1)
    finally:
        sys.settrace(None)
    return frozenset(arcs)


def behaviour(data, max_frame):
    """(key, frames, counts) of one input: the key is the decoder branches it takes,
    whether it yields none, one or more frames, and which counters it moves."""
    frames, counts = decode(data, max_frame)
    outcome = (min(len(frames), 2),) + tuple(min(count, 1) for count in counts)
    key = (arcs_of(data, max_frame), outcome)
    return key, frames, counts


class Corpus:
    """Pinned edge cases, and the shortest input of each behaviour key."""

    def __init__(self):
        self.pinned = []  # (label, data, max_frame)
        self.shortest = {}  # behaviour key -> (data, max_frame)

    def pin(self, label, data, max_frame):
        data = bytes(data)
        assert len(data) <= MAX_INPUT, label
        self.pinned.append((label, data, max_frame))

    def offer(self, data, max_frame):
        data = bytes(data)
        if len(data) > MAX_INPUT:
            return
        key = behaviour(data, max_frame)[0]
        entry = (data, max_frame)
        old = self.shortest.get(key)
        if old is None or (len(data), entry) < (len(old[0]), old):
            self.shortest[key] = entry

    def entries(self):
        """(label or None, data, max_frame, frames, counts), pinned first."""
        generated = sorted(set(self.shortest.values()), key=lambda p: (len(p[0]), p))
        seen = set()
        out = []
        for label, data, max_frame in self.pinned + [(None, d, m) for d, m in generated]:
            if (data, max_frame) in seen:
                continue
            seen.add((data, max_frame))
            frames, counts = decode(data, max_frame)
            # The decoder's answer is the expectation: check it against the format first,
            # and that chunking changes nothing.
            want_frames, want_counts, want_pulled = reference_decode(data, max_frame)
            assert (frames, counts) == (want_frames, want_counts + (want_pulled,)), data.hex()
            assert decode(data, max_frame, 1) == (frames, counts), data.hex()
            out.append((label, data, max_frame, frames, counts))
        return out


# ---------------------------------------------------------------- edge cases


def zero_free_frame(size, kind=0x44, byte=0x55):
    """A frame whose raw bytes (CRC included) are `size` >= 7 bytes with no zero: a seq
    is picked that keeps the CRC free of zeros."""
    payload = bytes((byte,)) * (size - OVERHEAD)
    for seq in range(0x0101, 0xFFFF):
        raw = bytes((kind, seq & 0xFF, seq >> 8)) + payload
        raw += crc32(raw).to_bytes(4, "little")
        if 0 not in raw:
            return encode(kind, seq, payload)
    raise AssertionError("no zero-free frame of %d bytes" % size)


def pin_edge_cases(corpus):
    good = encode(0x43, 9, b"hello")
    empty = encode(0x41, 0, b"")
    pin = corpus.pin
    pin("nothing", b"", 64)
    pin("a lone delimiter", b"\x00", 64)
    pin("a delimiter run", b"\x00\x00\x00\x00", 64)
    pin("an empty payload: 7 raw bytes, max_frame 7", empty, 7)
    pin("an empty payload, max_frame 6: one byte too long", empty, 6)
    pin("no buffer at all", b"\x01\x00" + empty, 0)
    pin("a frame, then a delimiter run, then a frame", good + b"\x00\x00" + empty, 64)
    pin("a good frame", good, 64)
    pin("a good frame, max_frame exactly its size", good, 12)
    pin("a good frame, max_frame one short", good, 11)
    pin("a frame with no delimiter yet: nothing", good[:-1], 64)
    pin("a frame cut short, then a good one after the delimiter", good[:6] + b"\x00" + good, 64)
    pin("garbage without a delimiter swallows the next frame", b"junk" + good + empty, 64)
    pin("garbage and a delimiter before a frame", b"junk\x00" + good, 64)
    pin("a flipped bit: bad CRC", good[:4] + bytes((good[4] ^ 0x08,)) + good[5:], 64)
    pin("bad COBS: the last block runs past the delimiter", b"\x05ab\x00" + good, 64)
    pin("bad COBS: a code byte last", b"\x03ab\x09\x00" + good, 64)
    pin("too short: one byte", b"\x02a\x00" + good, 64)
    pin("too short: six bytes", cobs_encode(b"\x43\x01\x00abc") + b"\x00" + good, 64)
    pin("a zero-only raw frame of 7 bytes (all code 1)", b"\x01" * 8 + b"\x00" + good, 64)
    pin("an all-zero payload", encode(0x44, 0x0100, bytes(40)), 64)
    pin("a frame far too long, then a good one", encode(0x44, 1, bytes(range(1, 200))) + good, 64)
    pin("too long and no delimiter yet", encode(0x44, 1, b"x" * 100)[:-1], 64)
    for size in (253, 254, 255):
        wire = zero_free_frame(size)
        pin("a zero-free raw frame of %d bytes" % size, wire, 262)
        pin("a zero-free raw frame of %d bytes, max_frame %d" % (size, size), wire, size)
        pin("a zero-free raw frame of %d bytes, max_frame %d" % (size, size - 1), wire, size - 1)
    wire = zero_free_frame(254)
    # COBS written without the final 0x01 block: the decoder takes it all the same.
    pin("a full block with no empty block after it", wire[:-2] + b"\x00", 262)
    pin("a full block cut one byte short", wire[:-3] + b"\x00", 262)
    pin("a zero right after a full block", encode(0x44, 1, b"\x55" * 251 + b"\x00\x55"), 262)
    pin("a zero-free frame byte by byte is the same: 0xFF in the middle",
        b"\xff" + b"\x01" * 254 + b"\x00" + good, 262)


# ---------------------------------------------------------------- generated inputs

SETTINGS = corpus_settings(EXAMPLES)


def collect(corpus):
    sizes = st.sampled_from(MAX_FRAMES)

    @SETTINGS
    @given(st.sampled_from((7, 16, 64, 262)).flatmap(lambda m: st.tuples(st.just(m), frames_within(m, max_count=3))),
           st.lists(st.none() | GARBAGE, max_size=4), sizes)
    def frames_and_garbage(case, garbage, other_size):
        max_frame, frames = case
        stream = bytearray()
        for index, (kind, seq, payload) in enumerate(frames):
            if index < len(garbage) and garbage[index] is not None:
                stream += garbage[index] + (b"\x00" if index % 2 == 0 else b"")
            stream += encode(kind, seq, payload)
        if len(garbage) > len(frames) and garbage[-1]:
            stream += garbage[-1]
        corpus.offer(stream, max_frame)
        corpus.offer(stream, other_size)

    @SETTINGS
    @given(st.lists(LINK_FRAME, min_size=1, max_size=3), st.lists(MUTATION, max_size=4), sizes)
    def mutated(frames, mutations, max_frame):
        stream = wire_of(frames)
        corpus.offer(stream, max_frame)
        stacked = stream
        for kind, position, byte in mutations:
            corpus.offer(mutate(stream, kind, position, byte), max_frame)
            stacked = mutate(stacked, kind, position, byte)
        corpus.offer(stacked, max_frame)

    @SETTINGS
    @given(st.binary(max_size=80) | st.lists(BYTE, max_size=80).map(bytes), sizes)
    def arbitrary(data, max_frame):
        corpus.offer(data, max_frame)

    frames_and_garbage()
    mutated()
    arbitrary()


# ---------------------------------------------------------------- output


def write(entries, path):
    # Tuples, not lists, and the counters as one flat tuple of small ints: every object
    # costs 32 bytes or more on a 64-bit MicroPython, whose heap the corpus must fit in.
    lines = [
        '"""Saved corpus for tonecore.frame.Decoder.  Generated by',
        "tests/properties/make_frame_corpus.py; do not edit by hand (rerun the script).",
        "",
        "CORPUS: (input, max_frame, frames) with frames the (kind, seq, payload) a",
        "Decoder(max_frame) yields for the input.  COUNTS: for the i-th input, items 5*i to",
        '5*i+4 are the decoder\'s bad_crc, bad_cobs, too_long, too_short and pulled afterwards."""',
        "",
        "CORPUS = (",
    ]
    for label, data, max_frame, frames, _ in entries:
        if label:
            lines.append("    # " + label)
        lines.append("    (%s, %d, %s)," % (ascii(data), max_frame, ascii(tuple(frames))))
    lines.append(")")
    lines.append("")
    lines.append("COUNTS = (")
    for at in range(0, len(entries), 6):
        lines.append("    " + "  ".join(", ".join(str(n) for n in entry[4]) + "," for entry in entries[at:at + 6]))
    lines.append(")")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    corpus = Corpus()
    pin_edge_cases(corpus)
    collect(corpus)
    entries = corpus.entries()
    write(entries, TARGET)
    good = sum(1 for entry in entries if entry[3])
    print("%d entries (%d pinned, %d with frames, %d bytes of input) from %d keys -> %s" % (
        len(entries), len(corpus.pinned), good, sum(len(e[1]) for e in entries), len(corpus.shortest),
        os.path.normpath(TARGET)))


if __name__ == "__main__":
    main()
