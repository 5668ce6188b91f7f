"""Property tests and fuzzing of tonecore.frame, and of tonecore.link.PedalEnd behind it
(CPython only).

- Round trips: generated frames, encoded and concatenated with garbage before and
  between them, fed in arbitrary chunks, decode to exactly those frames.
- Fuzzing: arbitrary bytes and mutated valid streams (bit flips, truncations,
  insertions, deleted bytes, duplicated or lost delimiters), fed in random chunks into
  `Decoder(max_frame)`, small `max_frame` included.  The decoder must agree with
  `reference_decode` (a plain split-on-0x00 reading of the format) on the frames, the
  damage counters and `pulled`; it never raises, never hands out a payload longer than
  `max_frame - 7` or a frame whose CRC is wrong, and never replaces or grows its buffer.
  A hang would trip the test's timeout.
- The pedal survives anything on its console: the same inputs, and streams of frames
  with a good CRC but garbage payloads of every kind (random bytes almost never pass the
  CRC, so those are where the protocol code gets exercised), go through
  `tonecore.link.PedalEnd.receive`, which must raise nothing and answer with whole frames.

How much fuzzing: TONEBRIDGE_FUZZ_EXAMPLES inputs per fuzz test (default 100000, as
`make test` runs it; `make fuzz` asks for 1000000).  The inputs are derandomized (the
same every run, as CI wants) unless TONEBRIDGE_FUZZ_RANDOM=1.  Each hypothesis example
carries a batch of inputs (hypothesis's own cost per example is far above one decode);
every input counted is a whole stream fed to a fresh decoder and a fresh pedal.
"""

import hashlib
import os
import random
import struct
import sys
import zlib
from binascii import crc32

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))

from memorypedal import Full, MemoryStore  # noqa: E402
from tonecore import cbor, link  # noqa: E402
from tonecore.errors import PedalRefused  # noqa: E402
from tonecore.frame import OVERHEAD, Decoder, encode  # noqa: E402

from fuzzing import BATCH, FUZZ_CASES, FUZZ_TIMEOUT, fuzz_settings  # noqa: E402
from fuzzing import FUZZ_RANDOM  # noqa: E402

ROUND_TRIP = settings(max_examples=1000, deadline=None, derandomize=not FUZZ_RANDOM, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Small buffers (below the 7-byte minimum frame too), the edges of a COBS block, the
# pedal's own sizes.
MAX_FRAMES = (0, 1, 6, 7, 8, 9, 16, 33, 64, 260, 261, 262, 1040)


# ---------------------------------------------------------------- the reference


def cobs_decode_lenient(piece):
    """(raw, complete) for a delimiter-free `piece`: the bytes its COBS blocks give, the
    last block cut short if the piece ends inside it (complete is False then)."""
    raw = bytearray()
    pos = 0
    complete = True
    while pos < len(piece):
        code = piece[pos]
        block = piece[pos + 1 : pos + code]
        pos += code
        if len(block) < code - 1:
            complete = False
        raw += block
        if code < 255 and pos < len(piece):  # the block's zero, unless it is the last
            raw.append(0)
    return raw, complete


def reference_decode(stream, max_frame):
    """What a Decoder(max_frame) fed `stream` must give, read straight off the format.

    Returns (frames, counters, pulled): frames as (kind, seq, payload bytes); counters
    (bad_crc, bad_cobs, too_long, too_short); pulled, the bytes after the last good
    frame.  A frame is the bytes between two delimiters (or the start); a frame whose
    decoded size passes max_frame is too long as soon as it does, even with no delimiter
    after it yet; empty pieces (delimiter runs) are not frames at all.
    """
    frames = []
    bad_crc = bad_cobs = too_long = too_short = 0
    pieces = bytes(stream).split(b"\x00")
    at = 0
    good_end = 0
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        at += len(piece) + (0 if last else 1)
        raw, complete = cobs_decode_lenient(piece)
        if len(raw) > max_frame:
            too_long += 1
        elif last or not piece:
            continue
        elif not complete:
            bad_cobs += 1
        elif len(raw) < OVERHEAD:
            too_short += 1
        elif crc32(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            bad_crc += 1
        else:
            frames.append((raw[0], raw[1] | raw[2] << 8, bytes(raw[3:-4])))
            good_end = at
    return frames, (bad_crc, bad_cobs, too_long, too_short), len(stream) - good_end


def counters(decoder):
    return decoder.bad_crc, decoder.bad_cobs, decoder.too_long, decoder.too_short


def split(stream, sizes, rotate=0):
    """`stream` cut into chunks whose sizes cycle through `sizes` (from index `rotate`)."""
    chunks = []
    pos = 0
    turn = rotate
    while pos < len(stream):
        size = sizes[turn % len(sizes)] if sizes else len(stream)
        chunks.append(stream[pos : pos + size])
        pos += size
        turn += 1
    return chunks


def as_fed(chunk, style):
    """(data, end) for feed(): bytes, a bytearray, or a bytearray with junk past `end`
    (the pedal's serial service reads into one reused buffer)."""
    if style == 0:
        return bytes(chunk), None
    if style == 1:
        return bytearray(chunk), None
    return bytearray(chunk) + b"\x00\x01\xff\x00" * (style - 1), len(chunk)


def decode_checked(stream, max_frame, sizes, rotate=0):
    """Feed `stream` to a fresh Decoder(max_frame) in chunks, checking every invariant;
    returns the frames as (kind, seq, payload bytes)."""
    decoder = Decoder(max_frame)
    buf = decoder.buf
    got = []
    for turn, chunk in enumerate(split(stream, sizes, rotate)):
        data, end = as_fed(chunk, (turn + rotate) % 4)
        limit = chunk.count(0)  # at most one frame per delimiter: the generator ends
        for kind, seq, payload in decoder.feed(data, end):
            limit -= 1
            assert limit >= 0, "more frames than delimiters"
            size = len(payload) + OVERHEAD
            assert size <= max_frame
            # The CRC still sits in the buffer right after the payload.
            raw = bytes(buf[:size])
            assert (raw[0], raw[1] | raw[2] << 8, raw[3:-4]) == (kind, seq, bytes(payload))
            assert crc32(raw[:-4]) == int.from_bytes(raw[-4:], "little")
            got.append((kind, seq, bytes(payload)))
    assert decoder.buf is buf and len(buf) == max_frame
    frames, counts, pulled = reference_decode(stream, max_frame)
    assert got == frames, stream.hex()
    assert counters(decoder) == counts, stream.hex()
    assert decoder.frames == len(frames)
    assert decoder.errors() == sum(counts)
    assert decoder.pulled == pulled
    return got


def inflate(body, out):
    unpacker = zlib.decompressobj(-9)
    data = unpacker.decompress(bytes(body), len(out))
    if len(data) < len(out) and not unpacker.eof:
        raise zlib.error("incomplete deflate data")  # as the pedal's DeflateIO (EOFError)
    out[:len(data)] = data
    return len(data)


def pedal_survives(stream, sizes, max_frame=1040, rx_buffer=0, deflate=False, rotate=0, store=None, pause=None):
    """Feed `stream` to a fresh PedalEnd in chunks: it must raise nothing and answer with
    whole, good frames; its decoder keeps its buffer.  Before chunk number `pause` the
    line is quiet long enough to end the session."""
    pedal = link.PedalEnd(store or MemoryStore(), max_frame=max_frame, window=2048, rx_buffer=rx_buffer,
                       inflate=inflate if deflate else None)
    buf = pedal.decoder.buf
    host = Decoder(1 << 16)
    now = 0
    for turn, chunk in enumerate(split(stream, sizes, rotate)):
        now += link.SESSION_MS if turn == pause else 3
        data, end = as_fed(chunk, (turn + rotate) % 4)
        out = pedal.receive(data, now, end)
        assert isinstance(out, (bytes, bytearray))
        for kind, _, _ in host.feed(bytes(out)):
            assert kind in (link.CONTROL, link.ACK)
        assert host.errors() == 0 and host.pulled == 0, bytes(out).hex()
        pedal.tick(now)
    assert pedal.decoder.buf is buf and len(buf) == max_frame
    return pedal


# ---------------------------------------------------------------- strategies

KINDS = st.integers(0, 255)
SEQS = st.integers(0, 0xFFFF)
CHUNK_SIZES = st.lists(st.integers(1, 300), min_size=1, max_size=8)
# Bytes that matter to COBS and to the link (0x00, small codes, 0xFF, the kinds).
SPECIAL = st.sampled_from((0, 1, 2, 3, 0xFE, 0xFF, 0x41, 0x43, 0x44, 0x5A))
BYTE = st.integers(0, 255) | SPECIAL


@st.composite
def frames_within(draw, max_frame, max_count=6):
    """A list of (kind, seq, payload) with payloads that fit a Decoder(max_frame)."""
    room = max_frame - OVERHEAD
    payload = st.binary(max_size=room) | st.lists(st.sampled_from((0, 1, 0xFF)), max_size=room).map(bytes)
    if room > 250:  # runs that end exactly at and around a full COBS block
        payload |= st.builds(lambda n, b: bytes((b,)) * n, st.integers(248, min(room, 520)), st.integers(1, 255))
    return draw(st.lists(st.tuples(KINDS, SEQS, payload), max_size=max_count))


GARBAGE = st.binary(max_size=40) | st.lists(BYTE, max_size=40).map(bytes)


# ---------------------------------------------------------------- round trips


@ROUND_TRIP
@given(st.integers(0, 600), KINDS, SEQS, st.data())
def test_an_encoded_frame_has_no_zero_but_its_delimiter(size, kind, seq, data):
    payload = data.draw(st.binary(min_size=size, max_size=size) | st.just(bytes((0x11,)) * size) | st.just(bytes(size)))
    wire = encode(kind, seq, payload)
    assert wire[-1] == 0 and wire.find(b"\x00") == len(wire) - 1
    raw = len(payload) + OVERHEAD
    # One COBS code byte, one more per 254 bytes without a zero, and the delimiter.
    assert raw + 2 <= len(wire) <= raw + 2 + raw // 254


@ROUND_TRIP
@given(st.sampled_from(MAX_FRAMES[3:]).flatmap(lambda m: st.tuples(st.just(m), frames_within(m))),
       st.lists(st.none() | GARBAGE, max_size=7), CHUNK_SIZES, st.integers(0, 7))
def test_frames_after_garbage_and_a_delimiter_round_trip_in_any_chunks(case, garbage, sizes, rotate):
    max_frame, frames = case
    # Garbage may hold anything but ends with a 0x00: the frame after it then starts
    # right after a delimiter, which is what resync promises.  Garbage that happens to
    # be a good frame by itself is not garbage.
    stream = bytearray()
    for index in range(len(frames) + 1):
        junk = garbage[index] if index < len(garbage) else None
        if junk is not None:
            junk = junk + b"\x00"
            if reference_decode(junk, max_frame)[0]:
                junk = b"\x00"
            stream += junk
        if index < len(frames):
            stream += encode(*frames[index])
    tail = garbage[-1] if garbage and garbage[-1] else b""
    stream += tail.replace(b"\x00", b"")  # an unfinished frame at the end: not yet anything
    got = decode_checked(bytes(stream), max_frame, sizes, rotate)
    assert got == frames


@ROUND_TRIP
@given(frames_within(1040, max_count=4), st.integers(1, 64))
def test_a_stream_fed_byte_by_byte_or_whole_decodes_the_same(frames, size):
    stream = b"".join(encode(kind, seq, payload) for kind, seq, payload in frames)
    assert decode_checked(stream, 1040, [1]) == frames
    assert decode_checked(stream, 1040, [size]) == frames
    assert decode_checked(stream, 1040, []) == frames


# ---------------------------------------------------------------- link frames

u32 = st.integers(0, 0xFFFFFFFF)
ANY_INT = st.integers(-(2**64), 2**64 - 1) | st.integers(-3, 40)
LEAF = st.none() | st.booleans() | ANY_INT | st.binary(max_size=40) | st.text(max_size=12)
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_INT | st.text(max_size=4), inner, max_size=3), max_leaves=6)
BODY = b"0123456789abcdef"  # the model the session prefixes below push
SHA = hashlib.sha256(BODY).digest()
# Any value for a field, right type or not.
FIELD_VALUE = st.sampled_from((0, 1, 2, 5, 16, 1 << 20, -1, True, None, b"", bytes(32), "m", SHA)) | VALUE
# Values a real request would carry (ids of the models the prefixes install or open).
MODEL_ID = st.integers(0, 4)
GOOD_FIELDS = {
    link.K_VERSION: st.just(link.VERSION),
    link.K_NONCE: VALUE,
    link.K_START: st.integers(0, 3),
    link.K_ID: MODEL_ID,
    link.K_SIZE: st.sampled_from((0, 8, len(BODY), 1 << 40)),
    link.K_SHA: st.sampled_from((SHA, bytes(32), b"\x01" * 31)),
    link.K_NAME: st.text(max_size=8) | st.just("n" * 600),  # the long one passes CONTROL_MAX
    link.K_PLATFORM: st.sampled_from(("nam", "ir", "")),
    link.K_FILENAME: st.text(max_size=8) | st.sampled_from(("m.nam", "ir.wav")),
}
REQUEST_FIELDS = {
    link.HELLO: (link.K_VERSION, link.K_NONCE),
    link.LIST: (link.K_START,),
    link.STAT: (link.K_ID, link.K_SIZE, link.K_SHA),
    link.PUT: (link.K_ID, link.K_SIZE, link.K_SHA, link.K_NAME, link.K_PLATFORM, link.K_FILENAME),
    link.COMMIT: (link.K_ID,),
    link.DELETE: (link.K_ID,),
    link.ACTIVATE: (link.K_ID,),
    link.BYE: (),
    link.ERROR: (),
}


def message(kind, fields):
    return cbor.dumps(dict([(link.K_TYPE, kind)] + list(fields.items())))


def request(kind):
    """A request of message type `kind`: its fields mostly right, some missing or of
    the wrong type."""
    fields = dict((key, GOOD_FIELDS[key] | GOOD_FIELDS[key] | FIELD_VALUE) for key in REQUEST_FIELDS[kind])
    return st.builds(message, st.just(kind), st.fixed_dictionaries(fields) | st.fixed_dictionaries({}, optional=fields))


def control_payloads():
    """Requests of every type, maps with odd types and keys, other CBOR values, and
    bytes that are not CBOR."""
    requests = st.one_of([request(kind) for kind in REQUEST_FIELDS])
    odd = st.builds(message, ANY_INT | VALUE, st.dictionaries(ANY_INT | st.text(max_size=3), VALUE, max_size=4))
    return requests | requests | requests | odd | VALUE.map(cbor.dumps) | st.binary(max_size=24)


def data_payloads():
    """DATA/DEFLATE payloads: short ones, and offsets near the ones a transfer expects."""
    offset = st.sampled_from((0, 1, 3, 7, 8, 16)) | u32
    # Random bytes; the whole model, half of it, one byte too many; raw deflate.
    body = st.binary(max_size=40) | st.sampled_from((BODY, BODY[:8], BODY + b"!", zlib.compress(BODY)[2:-4], b"\x03\x00"))
    return st.binary(max_size=5) | st.builds(lambda o, b: struct.pack("<I", o) + b, offset, body)


def ack_payloads():
    good = st.builds(lambda *f: struct.pack(link.ACK_FORMAT, *f), SEQS, u32, u32, u32, st.integers(0, 255))
    return good | st.binary(max_size=24)


LINK_FRAME = st.one_of(
    st.tuples(st.just(link.CONTROL), SEQS, control_payloads()),
    st.tuples(st.sampled_from((link.DATA, link.DEFLATE)), SEQS, data_payloads()),
    st.tuples(st.just(link.ACK), SEQS, ack_payloads()),
    st.tuples(KINDS, SEQS, st.binary(max_size=16)),
)


def session(installed=0, transfer=True):
    """Frames that open a session, install models 1..`installed` (BODY each) and open a
    transfer of BODY as the next model."""
    frames = [(link.CONTROL, 1, message(link.HELLO, {link.K_VERSION: link.VERSION, link.K_NONCE: 5}))]
    seq = 2
    for model_id in range(1, installed + 2 if transfer else installed + 1):
        put = {link.K_ID: model_id, link.K_SIZE: len(BODY), link.K_SHA: SHA, link.K_NAME: "m", link.K_FILENAME: "m.nam"}
        frames.append((link.CONTROL, seq, message(link.PUT, put)))
        if model_id <= installed:
            frames.append((link.DATA, seq + 1, struct.pack("<I", 0) + BODY))
            frames.append((link.CONTROL, seq + 2, message(link.COMMIT, {link.K_ID: model_id})))
        seq += 3
    return frames


PREFIXES = (
    [],
    session(transfer=False),  # a session, no transfer
    session(),  # model 1's transfer open at offset 0
    session(installed=2),  # models 1 and 2 installed, model 3's transfer open
)


class FailingStore(MemoryStore):
    """A MemoryStore whose `fail_at`-th call raises `error` (flash full, an I/O error)."""

    def __init__(self, fail_at, error):
        MemoryStore.__init__(self)
        self.calls = 0
        self.fail_at = fail_at
        self.error = error

    def _call(self):
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.error


for _name in ("info", "model_count", "model_item", "active_model", "stat", "open", "write", "flush", "close", "commit",
              "delete", "activate"):
    def _failing(self, *args, _method=getattr(MemoryStore, _name)):
        self._call()
        return _method(self, *args)

    setattr(FailingStore, _name, _failing)


def some_store(rng):
    """Mostly a MemoryStore; now and then one whose flash fails at some call."""
    if rng.random() < 0.8:
        return MemoryStore()
    error = rng.choice((OSError(28, "ENOSPC"), Full("library full"), PedalRefused("storage", link.E_STORAGE)))
    return FailingStore(rng.randint(1, 12), error)


def wire_of(frames):
    return b"".join(encode(kind, seq, payload) for kind, seq, payload in frames)


# ---------------------------------------------------------------- fuzzing


def mutate(stream, kind, position, byte):
    """One mutation: flip a bit, truncate, insert, replace or delete a byte, repeat a
    delimiter, remove one, or repeat a slice (a frame sent twice)."""
    size = len(stream)
    at = position % (size + 1)
    if kind == "truncate":
        return stream[:at]
    if kind == "insert":
        return stream[:at] + bytes((byte,)) + stream[at:]
    if kind in ("double delimiter", "lose delimiter"):
        zeros = [i for i, b in enumerate(stream) if b == 0]
        if zeros:
            zero = zeros[position % len(zeros)]
            return stream[:zero] + (b"\x00\x00" if kind == "double delimiter" else b"") + stream[zero + 1 :]
        return stream[:at] + b"\x00" + stream[at:]  # no delimiter yet: add one
    if kind == "repeat":
        length = 1 + byte % 64
        return stream[:at] + stream[at : at + length] + stream[at:]
    if at == size:  # the others need a byte to work on
        return stream + bytes((byte,))
    if kind == "flip":
        return stream[:at] + bytes((stream[at] ^ (1 << (byte % 8)),)) + stream[at + 1 :]
    if kind == "replace":
        return stream[:at] + bytes((byte,)) + stream[at + 1 :]
    return stream[:at] + stream[at + 1 :]  # delete


MUTATION = st.tuples(
    st.sampled_from(("flip", "truncate", "insert", "replace", "delete", "double delimiter", "lose delimiter", "repeat")),
    st.integers(0, 2**16),
    st.integers(0, 255),
)


# The choices made per input (chunk sizes, decoder sizes, picks from a pool) come from a
# seeded random.Random: hypothesis's own random() costs more than the decoding.
SEEDS = st.integers(0, 2**32 - 1)


def fuzz_one(stream, rng, counter):
    """One fuzz input: through a decoder of some size and through a pedal."""
    counter[0] += 1
    sizes = [rng.choice((1, 2, 3, 5, 8, 13, 64, 255, 256, 1000)) for _ in range(rng.randint(1, 4))]
    rotate = rng.randrange(4)
    decode_checked(stream, rng.choice(MAX_FRAMES), sizes, rotate)
    # The pedal reads in bigger pieces (the decoder above had the small ones): as a UART
    # driver hands them over, and the fuzz stays fast.
    pedal_survives(stream, [rng.choice((16, 64, 260, 4096))], max_frame=rng.choice((7, 64, 1040)),
                   rx_buffer=rng.choice((0, 240)),
                   deflate=rng.random() < 0.5, rotate=rotate, pause=rng.randrange(40), store=some_store(rng))


@FUZZ_TIMEOUT
def test_fuzz_arbitrary_bytes():
    counter = [0]
    alphabets = st.lists(BYTE, min_size=1, max_size=6)

    @fuzz_settings(FUZZ_CASES, BATCH)
    @given(st.lists(st.binary(max_size=300), min_size=BATCH // 2, max_size=BATCH // 2),
           alphabets, SEEDS)
    def run(inputs, alphabet, seed):
        rng = random.Random(seed)
        # Half plain random bytes, half drawn from a few bytes (COBS codes, zeros, 0xFF),
        # which reach the decoder's branches far more often.
        for data in inputs:
            fuzz_one(data, rng, counter)
        for _ in range(BATCH - len(inputs)):
            fuzz_one(bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 300))), rng, counter)

    run()
    assert counter[0] >= FUZZ_CASES


@FUZZ_TIMEOUT
def test_fuzz_mutated_streams():
    # Each example: one valid stream, BATCH - 1 single mutations of it, and all of them
    # applied in turn (so several changes meet in one input).
    counter = [0]

    @fuzz_settings(FUZZ_CASES, BATCH)
    @given(st.sampled_from(PREFIXES), st.lists(LINK_FRAME, max_size=5) | frames_within(1040, max_count=3),
           st.lists(MUTATION, min_size=BATCH - 1, max_size=BATCH - 1), SEEDS)
    def run(prefix, frames, mutations, seed):
        rng = random.Random(seed)
        stream = wire_of(prefix + frames)
        stacked = stream
        for kind, position, byte in mutations:
            fuzz_one(mutate(stream, kind, position, byte), rng, counter)
            stacked = mutate(stacked, kind, position, byte)
        fuzz_one(stacked, rng, counter)

    run()
    assert counter[0] >= FUZZ_CASES


@FUZZ_TIMEOUT
def test_fuzz_pedal_with_good_frames_of_garbage():
    # Every frame has a good CRC; the payloads are garbage of each kind.  Each example
    # draws a pool of frames; each input is a session prefix and a random pick from the
    # pool, so the pedal meets them in many orders and states.
    counter = [0]
    seen = [0, 0]  # frames sent, frames the pedals took

    @fuzz_settings(FUZZ_CASES, BATCH)
    @given(st.lists(LINK_FRAME, min_size=1, max_size=12), SEEDS)
    def run(pool, seed):
        rng = random.Random(seed)
        for _ in range(BATCH):
            counter[0] += 1
            frames = list(rng.choice(PREFIXES)) + [rng.choice(pool) for _ in range(rng.randint(1, 8))]
            if rng.random() < 0.3:  # a frame sent twice: the pedal's repeated-request path
                frames.append(rng.choice(frames))
            stream = wire_of(frames)
            sizes = [rng.choice((1, 7, 16, 64, 260, 4096, 4096))]
            pedal = pedal_survives(stream, sizes, max_frame=rng.choice((64, 1040)), rx_buffer=rng.choice((0, 240)),
                                   deflate=rng.random() < 0.5, rotate=rng.randrange(4),
                                   pause=rng.randrange(400) if rng.random() < 0.1 else None,
                                   store=some_store(rng))
            seen[0] += len(frames)
            seen[1] += pedal.stats["frames"]

    run()
    assert counter[0] >= FUZZ_CASES
    # Most frames got past the CRC (some are too long for a 64-byte pedal, some are cut
    # by a session that timed out mid-frame, which resets the decoder).
    assert seen[1] > seen[0] * 0.6, seen


def test_good_frames_of_garbage_reach_the_protocol_paths():
    """Good frames of garbage do reach the pedal's answers: errors, a session, DATA
    written and acknowledged (a fuzz that never gets past the CRC could not fail)."""
    frames = session() + [
        (link.CONTROL, 9, b"\xff\x00"),  # not CBOR
        (link.CONTROL, 10, cbor.dumps([1, 2])),  # not a map
        (link.CONTROL, 11, cbor.dumps({link.K_TYPE: link.STAT, link.K_ID: "x"})),  # a field of the wrong type
        (link.CONTROL, 12, cbor.dumps({link.K_TYPE: 99})),  # an unknown type
        (link.DATA, 13, b"\x00\x00"),  # too short for an offset
        (link.DATA, 14, struct.pack("<I", 9) + b"x"),  # past `next`: a gap
        (link.DATA, 15, struct.pack("<I", 0) + b"0123"),  # the right place
        (link.ACK, 16, b"\x01"),  # an ACK of the wrong length
    ]
    stream = wire_of(frames)
    store = MemoryStore()
    pedal = link.PedalEnd(store, rx_buffer=240)  # a UART: an ACK after every DATA frame
    replies = []
    nexts = []
    for kind, seq, payload in Decoder(4096).feed(bytes(pedal.receive(stream, 0))):
        if kind == link.CONTROL:
            reply = link.parse_control(payload)
            replies.append((seq, reply[link.K_TYPE], reply.get(link.K_CODE)))
        else:
            nexts.append(link.parse_ack(payload)[2])
    assert replies == [
        (1, link.HELLO, None), (2, link.PUT, None), (9, link.ERROR, link.E_BAD_REQUEST),
        (10, link.ERROR, link.E_BAD_REQUEST), (11, link.ERROR, link.E_BAD_REQUEST),
        (12, link.ERROR, link.E_BAD_REQUEST),
    ]
    assert max(nexts) == 4
    assert pedal.stats["gaps"] == 1 and pedal.stats["data"] == 4
    assert store.current.received() == b"0123"
    pedal_survives(stream, [1], pause=40)  # byte by byte; the session times out mid-frame


def test_the_session_prefixes_do_what_they_say():
    store = MemoryStore()
    pedal = link.PedalEnd(store)
    pedal.receive(wire_of(PREFIXES[3]), 0)
    assert sorted(store.installed) == [1, 2]
    assert pedal.active and pedal.transfer == [3, len(BODY), 0, 0]


def test_a_flash_error_at_a_periodic_flush_does_not_escape_receive():
    class FlushFails(MemoryStore):
        def flush(self):
            raise OSError(28, "ENOSPC")

    body = bytes(link.FLUSH_EVERY + 4000)
    pedal = link.PedalEnd(FlushFails())
    put = {link.K_ID: 1, link.K_SIZE: len(body), link.K_SHA: hashlib.sha256(body).digest(), link.K_FILENAME: "m.nam"}
    pedal.receive(wire_of(session(transfer=False) + [(link.CONTROL, 2, message(link.PUT, put))]), 0)
    for seq, offset in enumerate(range(0, len(body), 4000)):
        out = pedal.receive(link.data_frame(10 + seq, offset, body[offset:offset + 4000]), 1)
        assert isinstance(out, (bytes, bytearray))
    assert pedal.transfer is None and isinstance(pedal.failure[1], OSError)  # closed; the host hears at its PUT
