"""Replays the saved CBOR fuzz corpus (tests/core/cbor_corpus.py) on this runtime.

The corpus was written on CPython by tests/properties/make_cbor_corpus.py (and checked
against cbor2 there); under MicroPython this proves the decoder answers every input the
same way, UTF-8 validation included.
"""

import unittest

from cbor_corpus import CORPUS
from tonecore.cbor import CborError, dumps, loads
from cbor_helpers import typed


def is_error(expected):
    return type(expected) is str and expected == "error"


class CorpusTest(unittest.TestCase):
    def test_the_corpus_is_a_real_mix(self):
        errors = sum(1 for _, expected in CORPUS if is_error(expected))
        self.assertGreaterEqual(len(CORPUS), 150)
        self.assertGreater(errors, 50)
        self.assertGreater(len(CORPUS) - errors, 30)
        for data, _ in CORPUS:
            self.assertLessEqual(len(data), 64)

    def test_every_input_decodes_as_recorded(self):
        wrong = []
        for data, expected in CORPUS:
            try:
                got = typed(loads(data))
            except CborError:
                got = "error"
            want = "error" if is_error(expected) else typed(expected)
            if got != want:
                wrong.append(data)
        self.assertEqual(wrong, [])

    def test_every_accepted_input_survives_a_round_trip(self):
        for data, expected in CORPUS:
            if not is_error(expected):
                self.assertEqual(typed(loads(dumps(expected))), typed(expected), data)
