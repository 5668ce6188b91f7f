"""Property tests and fuzzing of tonecore.cbor against cbor2 (CPython only).

- Round trips both ways with cbor2 for generated values in the subset.
- Fuzzing: arbitrary bytes and mutated valid encodings give a value or CborError,
  nothing else; whenever we accept an input cbor2 accepts it too and decodes the
  same value.
- The decoder allocates nothing in proportion to a declared length, only to the input.

How much fuzzing: TONEBRIDGE_FUZZ_EXAMPLES inputs per fuzz test (default 100000, as
`make test` runs it; `make fuzz` asks for 1000000).  The inputs are derandomized (the
same every run, as CI wants) unless TONEBRIDGE_FUZZ_RANDOM=1.  Each hypothesis example
carries a batch of inputs: hypothesis's own cost per example is far above one decode.
"""

import os
import sys
import time
import tracemalloc

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from tonecore.cbor import CborError, dumps, loads

from fuzzing import BATCH, FUZZ_CASES, FUZZ_TIMEOUT, ROUND_TRIP, fuzz_settings  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
from cbor_helpers import typed  # noqa: E402


INTEGERS = st.integers(min_value=-(2**64), max_value=2**64 - 1)
SCALARS = st.none() | st.booleans() | INTEGERS | st.binary(max_size=40) | st.text(max_size=20)
KEYS = INTEGERS | st.text(max_size=8)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)
# What dumps also takes: tuples for arrays.
ENCODABLE = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5)
    | st.lists(inner, max_size=5).map(tuple)
    | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


def depth(value):
    """How many arrays/maps nest in `value` (the max_depth it needs)."""
    if isinstance(value, (list, tuple)):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


# ---------------------------------------------------------------- round trips


@ROUND_TRIP
@given(ENCODABLE)
def test_cbor2_decodes_what_we_encode_and_encodes_it_the_same(value):
    encoded = dumps(value)
    assert typed(cbor2.loads(encoded)) == typed(value)
    # Both write preferred heads and map entries in insertion order.
    assert encoded == cbor2.dumps(value)


@ROUND_TRIP
@given(VALUES)
def test_we_decode_what_cbor2_encodes(value):
    encoded = cbor2.dumps(value, canonical=False)
    assert typed(loads(encoded, max_depth=depth(value))) == typed(value)


@ROUND_TRIP
@given(VALUES)
def test_max_depth_is_exact(value):
    encoded = dumps(value)
    needed = depth(value)
    assert typed(loads(encoded, max_depth=needed)) == typed(value)
    if needed:
        try:
            loads(encoded, max_depth=needed - 1)
        except CborError:
            return
        raise AssertionError("decoded with max_depth one short")


# ---------------------------------------------------------------- fuzzing


def decode_checked(data, counter):
    """Decode `data`: a value (which cbor2 must agree on) or CborError, nothing else."""
    counter[0] += 1
    try:
        value = loads(data)
    except CborError:
        return
    # Our subset lies inside cbor2's: whatever we accept, cbor2 accepts the same way.
    assert typed(cbor2.loads(data)) == typed(value), data.hex()


def mutate(encoded, kind, position, byte):
    """One mutation of `encoded`: flip a bit, truncate, insert, replace or delete a byte."""
    size = len(encoded)
    at = position % (size + 1)
    if kind == "truncate":
        return encoded[:at]
    if kind == "insert":
        return encoded[:at] + bytes((byte,)) + encoded[at:]
    if at == size:  # the others need a byte to work on
        return encoded + bytes((byte,))
    if kind == "flip":
        return encoded[:at] + bytes((encoded[at] ^ (1 << (byte % 8)),)) + encoded[at + 1 :]
    if kind == "replace":
        return encoded[:at] + bytes((byte,)) + encoded[at + 1 :]
    return encoded[:at] + encoded[at + 1 :]  # delete


MUTATION = st.tuples(
    st.sampled_from(("flip", "truncate", "insert", "replace", "delete")),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=255),
)


@FUZZ_TIMEOUT
def test_fuzz_arbitrary_bytes():
    counter = [0]

    @fuzz_settings(FUZZ_CASES, BATCH)
    @given(st.lists(st.binary(max_size=64), min_size=BATCH, max_size=BATCH))
    def run(inputs):
        for data in inputs:
            decode_checked(data, counter)

    run()
    assert counter[0] >= FUZZ_CASES


@FUZZ_TIMEOUT
def test_fuzz_mutated_encodings():
    # Each example: one valid encoding, BATCH single mutations of it, and all of those
    # mutations applied in turn (so several changes can meet in one input).
    counter = [0]

    @fuzz_settings(FUZZ_CASES, BATCH + 1)
    @given(VALUES, st.lists(MUTATION, min_size=BATCH, max_size=BATCH))
    def run(value, mutations):
        encoded = dumps(value)
        stacked = encoded
        for kind, position, byte in mutations:
            decode_checked(mutate(encoded, kind, position, byte), counter)
            stacked = mutate(stacked, kind, position, byte)
        decode_checked(stacked, counter)

    run()
    assert counter[0] >= FUZZ_CASES


# ---------------------------------------------------------------- memory


def peak_allocation(data, max_depth=16):
    """Bytes allocated at the peak of loads(data) (tracemalloc must be running)."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        loads(data, max_depth=max_depth)
    except CborError:
        pass
    return tracemalloc.get_traced_memory()[1] - before


def test_huge_declared_lengths_fail_fast_without_allocating():
    payload = b"\x00" * 4000
    tracemalloc.start()
    try:
        for major in (2, 3, 4, 5):
            for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
                for length in (len(payload) + 1, 2 ** (8 * width) - 1, 2 ** (8 * width - 1)):
                    if length <= len(payload) or length >= 2 ** (8 * width):
                        continue
                    data = bytes(((major << 5) | info,)) + length.to_bytes(width, "big") + payload
                    started = time.perf_counter()
                    peak = peak_allocation(data)
                    assert time.perf_counter() - started < 0.05, data[:9].hex()
                    assert peak < 2048, (data[:9].hex(), peak)
    finally:
        tracemalloc.stop()


@FUZZ_TIMEOUT
def test_fuzz_allocation_stays_within_the_input_size():
    # Random inputs up to 4 KB (the size of the link's control messages), some behind a
    # head that declares a long string or a big array.
    cases = max(200, FUZZ_CASES // 200)
    counter = [0]
    heads = st.sampled_from((b"", b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff", b"\x9a\x7f\xff\xff\xff", b"\x79\x10\x00", b"\x99\x0f\xa0"))

    @fuzz_settings(cases, 1)
    @given(heads, st.binary(max_size=4096))
    def run(head, body):
        data = head + body
        counter[0] += 1
        assert peak_allocation(data) <= 4 * len(data) + 4096, data[:16].hex()

    tracemalloc.start()
    try:
        run()
    finally:
        tracemalloc.stop()
    assert counter[0] >= cases
