"""Replays the saved frame corpus (tests/core/frame_corpus.py) on this runtime.

The corpus was written on CPython by tests/properties/make_frame_corpus.py (and checked
there against a reference reading of the format); under MicroPython this proves the
decoder yields the same frames and counts the same damage for every input, however it
arrives: whole, byte by byte, or from a reused buffer with `end` and stale bytes after.
"""

import unittest

from frame_corpus import CORPUS, COUNTS
from tonecore.frame import OVERHEAD, Decoder


def decode(data, max_frame, step=0, stale=b""):
    """(frames, counts) of a Decoder(max_frame) fed `data` in chunks of `step` bytes
    (0: whole); with `stale`, each chunk comes in a bytearray with those bytes after
    `end`, as the pedal's serial service reads into one buffer."""
    decoder = Decoder(max_frame)
    buf = decoder.buf
    frames = []
    step = step or len(data) or 1
    for at in range(0, len(data), step):
        chunk = data[at:at + step]
        if stale:
            fed = decoder.feed(bytearray(chunk) + stale, len(chunk))
        else:
            fed = decoder.feed(chunk)
        for kind, seq, payload in fed:
            frames.append((kind, seq, bytes(payload)))
    if decoder.buf is not buf or len(buf) != max_frame:
        raise AssertionError("the decoder replaced its buffer")
    counts = (decoder.bad_crc, decoder.bad_cobs, decoder.too_long, decoder.too_short, decoder.pulled)
    return tuple(frames), counts


def recorded(index):
    """(frames, counts) the corpus records for its `index`-th input."""
    return CORPUS[index][2], tuple(COUNTS[5 * index:5 * index + 5])


class FrameCorpusTest(unittest.TestCase):
    def test_the_corpus_is_a_real_mix(self):
        self.assertEqual(len(COUNTS), 5 * len(CORPUS))
        self.assertGreaterEqual(len(CORPUS), 150)
        self.assertGreater(sum(1 for _, _, frames in CORPUS if frames), 50)
        for kind in range(4):  # bad_crc, bad_cobs, too_long, too_short: each many times
            self.assertGreater(sum(1 for index in range(len(CORPUS)) if recorded(index)[1][kind]), 10)
        for data, max_frame, frames in CORPUS:
            self.assertLessEqual(len(data), 300)
            for frame in frames:
                self.assertLessEqual(len(frame[2]), max_frame - OVERHEAD)

    def check_every_input(self, step=0, stale=b""):
        wrong = []
        for index, (data, max_frame, _) in enumerate(CORPUS):
            if decode(data, max_frame, step, stale) != recorded(index):
                wrong.append(index)
        self.assertEqual(wrong, [])

    def test_every_input_decodes_as_recorded_when_fed_whole(self):
        self.check_every_input()

    def test_every_input_decodes_as_recorded_when_fed_byte_by_byte(self):
        self.check_every_input(1)

    def test_every_input_decodes_as_recorded_from_a_reused_buffer(self):
        self.check_every_input(7, b"\x00\x02A\x00")
