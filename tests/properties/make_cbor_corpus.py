"""Write tests/core/cbor_corpus.py: a saved fuzz corpus for tonecore.cbor.

    .venv/bin/python tests/properties/make_cbor_corpus.py

(from the repository root; rerun it after changing what the decoder accepts, and
commit the new corpus).  tests/core/test_cbor_corpus.py replays the corpus on CPython
and under MicroPython, so both runtimes must treat every input the same way.

Where the inputs come from: valid encodings of hypothesis-generated values, mutations
of them (flipped bits, truncations, inserted/replaced/deleted bytes), arbitrary bytes,
text strings with random UTF-8-ish payloads, and the RFC 8949 Appendix A examples.
Each input gets a behaviour key (major type and head size of its first byte, then the
error message or the shape of the decoded value, and for text the class of its first
non-ASCII byte and whether a structure-only UTF-8 check, MicroPython's, passes it);
the corpus keeps the shortest and the longest input of each key, so it covers every
way the decoder can answer without growing large.  Generation is derandomized: the
same hypothesis version writes the same corpus.  Every accepted input is checked
against cbor2 before it is saved.
"""

import os
import re
import sys

import cbor2
from hypothesis import given
from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "core"))

from fuzzing import corpus_settings  # noqa: E402
from test_cbor import RFC_EXAMPLES, RFC_REFUSED  # noqa: E402
from cbor_helpers import typed  # noqa: E402
from test_cbor_props import MUTATION, VALUES, mutate  # noqa: E402
from tonecore.cbor import CborError, dumps, loads  # noqa: E402

TARGET = os.path.join(HERE, "..", "core", "cbor_corpus.py")
MAX_INPUT = 64
EXAMPLES = 4000  # hypothesis examples per source

# The first byte of a UTF-8 character, by the class that decides its validity.
LEAD_CLASSES = (
    (0x80, 0xBF, "continuation"),
    (0xC0, 0xC1, "C0-C1"),
    (0xC2, 0xDF, "C2-DF"),
    (0xE0, 0xE0, "E0"),
    (0xE1, 0xEC, "E1-EC"),
    (0xED, 0xED, "ED"),
    (0xEE, 0xEF, "EE-EF"),
    (0xF0, 0xF0, "F0"),
    (0xF1, 0xF3, "F1-F3"),
    (0xF4, 0xF4, "F4"),
    (0xF5, 0xF7, "F5-F7"),
    (0xF8, 0xFF, "F8-FF"),
)


def head_class(data):
    if not data:
        return "empty"
    info = data[0] & 0x1F
    size = "short" if info < 24 else "arg%d" % (1 << (info - 24)) if info < 28 else "reserved" if info < 31 else "indefinite"
    return "%d/%s" % (data[0] >> 5, size)


def shape(value):
    """A coarse shape of a decoded value: "int", "list flat", "dict nested", ...."""
    if isinstance(value, (list, dict)):
        items = value.values() if isinstance(value, dict) else value
        if not items:
            return type(value).__name__ + " empty"
        nested = any(isinstance(item, (list, dict)) for item in items)
        return type(value).__name__ + (" nested" if nested else " flat")
    return type(value).__name__


def text_class(data):
    """For a text string item: the class of its first non-ASCII byte ("ascii" if none)."""
    for byte in data[1:]:
        if byte >= 0x80:
            for low, high, name in LEAD_CLASSES:
                if low <= byte <= high:
                    return name
    return "ascii"


def well_structured(payload):
    """True when `payload` passes a structure-only UTF-8 check (lead bytes C0..F7 followed
    by the right number of continuation bytes), as MicroPython's decoder does: the
    invalid texts that pass it are the ones tonecore.cbor must catch by itself there."""
    need = 0
    for byte in payload:
        if need:
            if byte & 0xC0 != 0x80:
                return False
            need -= 1
        elif byte >= 0xF8 or 0x80 <= byte < 0xC0:
            return False
        elif byte >= 0xC0:
            need = 1 if byte < 0xE0 else 2 if byte < 0xF0 else 3
    return need == 0


def behaviour(data):
    """(key, accepted, value): how loads answers `data`; the key groups coarsely."""
    try:
        value = loads(data)
    except CborError as error:
        accepted, value, outcome = False, None, re.sub(r" \d+", " N", str(error))
    else:
        accepted, outcome = True, "ok " + shape(value)
    key = (head_class(data), outcome)
    if data and data[0] >> 5 == 3 and (accepted or "UTF-8" in outcome):
        # Which UTF-8 rule the text met or broke.  data[1:] is the payload, or for a
        # 2-byte head a length byte (24..64, ASCII: it changes neither answer) and it.
        key += (text_class(data), well_structured(data[1:]))
    return key, accepted, value


class Corpus:
    """For each behaviour key, the shortest and the longest input seen."""

    def __init__(self):
        self.by_key = {}

    def offer(self, data):
        data = bytes(data)
        if len(data) > MAX_INPUT:
            return
        key, accepted, value = behaviour(data)
        if accepted:
            if value == "error":
                return  # would read as an expected error
            assert typed(cbor2.loads(data)) == typed(value), data.hex()
        expected = value if accepted else "error"
        kept = self.by_key.setdefault(key, [])
        if any(data == old for old, _ in kept):
            return
        kept.append((data, expected))
        kept.sort(key=lambda pair: (len(pair[0]), pair[0]))
        if len(kept) > 2:
            del kept[1:-1]

    def entries(self):
        return sorted((pair for kept in self.by_key.values() for pair in kept), key=lambda pair: (len(pair[0]), pair[0]))


SETTINGS = corpus_settings(EXAMPLES)


def collect(corpus):
    for hex_text, _ in RFC_EXAMPLES:
        corpus.offer(bytes.fromhex(hex_text))
    for hex_text in RFC_REFUSED:
        corpus.offer(bytes.fromhex(hex_text))

    @SETTINGS
    @given(VALUES, st.lists(MUTATION, max_size=6))
    def valid_and_mutated(value, mutations):
        encoded = dumps(value)
        corpus.offer(encoded)
        stacked = encoded
        for kind, position, byte in mutations:
            corpus.offer(mutate(encoded, kind, position, byte))
            stacked = mutate(stacked, kind, position, byte)
        corpus.offer(stacked)

    @SETTINGS
    @given(st.binary(max_size=MAX_INPUT))
    def arbitrary(data):
        corpus.offer(data)

    # Text payloads built from UTF-8 characters, lone bytes, and lead bytes followed by
    # one to three continuation bytes (well structured, often still invalid UTF-8).
    piece = (
        st.characters().map(lambda c: c.encode("utf-8", "surrogatepass"))
        | st.integers(0, 255).map(lambda b: bytes((b,)))
        | st.builds(lambda lead, tail: bytes([lead] + tail), st.integers(0xC0, 0xF7), st.lists(st.integers(0x80, 0xBF), min_size=1, max_size=3))
    )

    @SETTINGS
    @given(st.lists(piece, max_size=4).map(b"".join).filter(lambda p: len(p) < 24))
    def text_payloads(payload):
        corpus.offer(bytes((0x60 + len(payload),)) + payload)

    valid_and_mutated()
    arbitrary()
    text_payloads()


def literal(value):
    """Python source for `value`, ASCII only (MicroPython reads \\u escapes too)."""
    return ascii(value)


def write(entries, path):
    lines = [
        '"""Saved fuzz corpus for tonecore.cbor: (input, expected) pairs, expected being the',
        'decoded value or "error".  Generated by tests/properties/make_cbor_corpus.py; do not',
        'edit by hand (rerun the script)."""',
        "",
        "CORPUS = (",
    ]
    for data, expected in entries:
        lines.append("    (%s, %s)," % (literal(data), literal(expected)))
    lines.append(")")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    corpus = Corpus()
    collect(corpus)
    entries = corpus.entries()
    write(entries, TARGET)
    errors = sum(1 for _, expected in entries if expected == "error")
    print("%d entries (%d errors, %d values) in %d keys -> %s" % (
        len(entries), errors, len(entries) - errors, len(corpus.by_key), os.path.normpath(TARGET)))


if __name__ == "__main__":
    main()
