"""tonecore.cbor: RFC 8949 Appendix A examples, the subset's edges, and hostile input.

Runs under pytest and under MicroPython (tests/core/run_micropython.py).
"""

import unittest
from binascii import unhexlify

from cbor_helpers import typed
from tonecore.cbor import CborError, dumps, loads
from tonecore.errors import ProtocolError


def dicts_keep_order():
    """CPython dicts iterate in insertion order; MicroPython's do not."""
    keys = ["e", "d", "c", "b", "a"]
    mapping = {}
    for key in keys:
        mapping[key] = None
    return list(mapping) == keys


DICTS_KEEP_ORDER = dicts_keep_order()

# RFC 8949 Appendix A, the examples inside our subset: (hex, value).  They are all in
# preferred form, so dumps(value) gives back exactly these bytes.
RFC_EXAMPLES = (
    ("00", 0),
    ("01", 1),
    ("0a", 10),
    ("17", 23),
    ("1818", 24),
    ("1819", 25),
    ("1864", 100),
    ("1903e8", 1000),
    ("1a000f4240", 1000000),
    ("1b000000e8d4a51000", 1000000000000),
    ("1bffffffffffffffff", 18446744073709551615),
    ("3bffffffffffffffff", -18446744073709551616),
    ("20", -1),
    ("29", -10),
    ("3863", -100),
    ("3903e7", -1000),
    ("f4", False),
    ("f5", True),
    ("f6", None),
    ("40", b""),
    ("4401020304", b"\x01\x02\x03\x04"),
    ("60", ""),
    ("6161", "a"),
    ("6449455446", "IETF"),
    ("62225c", '"\\'),
    ("62c3bc", "\u00fc"),
    ("63e6b0b4", "\u6c34"),
    ("64f0908591", "\U00010151"),
    ("80", []),
    ("83010203", [1, 2, 3]),
    ("8301820203820405", [1, [2, 3], [4, 5]]),
    ("98190102030405060708090a0b0c0d0e0f101112131415161718181819", list(range(1, 26))),
    ("a0", {}),
    ("a201020304", {1: 2, 3: 4}),
    ("a26161016162820203", {"a": 1, "b": [2, 3]}),
    ("826161a161626163", ["a", {"b": "c"}]),
    ("a56161614161626142616361436164614461656145", {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}),
)

# RFC 8949 Appendix A, the examples outside our subset: each must be refused.
RFC_REFUSED = (
    # bignums (tags 2 and 3)
    "c249010000000000000000",
    "c349010000000000000000",
    # floats: half, single and double precision
    "f90000",
    "f98000",
    "f93c00",
    "fb3ff199999999999a",
    "f93e00",
    "f97bff",
    "fa47c35000",
    "fa7f7fffff",
    "fb7e37e43c8800759c",
    "f90001",
    "f90400",
    "f9c400",
    "fbc010666666666666",
    "f97c00",
    "f97e00",
    "f9fc00",
    "fa7f800000",
    "fa7fc00000",
    "faff800000",
    "fb7ff0000000000000",
    "fb7ff8000000000000",
    "fbfff0000000000000",
    # undefined, simple(16), simple(255)
    "f7",
    "f0",
    "f8ff",
    # tags 0, 1, 23, 24, 32
    "c074323031332d30332d32315432303a30343a30305a",
    "c11a514b67b0",
    "c1fb41d452d9ec200000",
    "d74401020304",
    "d818456449455446",
    "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
    # indefinite-length strings, arrays and maps
    "5f42010243030405ff",
    "7f657374726561646d696e67ff",
    "9fff",
    "9f018202039f0405ffff",
    "9f01820203820405ff",
    "83018202039f0405ff",
    "83019f0203ff820405",
    "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
    "bf61610161629f0203ffff",
    "826161bf61626163ff",
    "bf6346756ef563416d7421ff",
)


def nested_arrays(depth):
    """`depth` arrays, one inside the other, around a 0."""
    return b"\x81" * depth + b"\x00"


class RfcExamplesTest(unittest.TestCase):
    def test_decodes_every_example_in_the_subset(self):
        for hex_text, value in RFC_EXAMPLES:
            self.assertEqual(typed(loads(unhexlify(hex_text))), typed(value), hex_text)

    def test_encodes_every_example_in_the_subset_to_the_same_bytes(self):
        for hex_text, value in RFC_EXAMPLES:
            raw = unhexlify(hex_text)
            encoded = dumps(value)
            if encoded != raw:
                # Only a map whose keys this runtime iterates in another order may differ.
                self.assertFalse(DICTS_KEEP_ORDER, hex_text)
                self.assertEqual(len(encoded), len(raw), hex_text)
                self.assertEqual(typed(loads(encoded)), typed(value), hex_text)

    def test_refuses_every_example_outside_the_subset(self):
        for hex_text in RFC_REFUSED:
            with self.assertRaises(CborError):
                loads(unhexlify(hex_text))


class EncodeTest(unittest.TestCase):
    def test_booleans_are_simple_values_not_integers(self):
        self.assertEqual(dumps([True, False, None, 1, 0]), b"\x85\xf5\xf4\xf6\x01\x00")

    def test_every_integer_width_uses_the_shortest_head(self):
        cases = (
            (23, b"\x17"),
            (24, b"\x18\x18"),
            (255, b"\x18\xff"),
            (256, b"\x19\x01\x00"),
            (65535, b"\x19\xff\xff"),
            (65536, b"\x1a\x00\x01\x00\x00"),
            (4294967295, b"\x1a\xff\xff\xff\xff"),
            (4294967296, b"\x1b\x00\x00\x00\x01\x00\x00\x00\x00"),
            (-24, b"\x37"),
            (-25, b"\x38\x18"),
            (-257, b"\x39\x01\x00"),
        )
        for value, raw in cases:
            self.assertEqual(dumps(value), raw)
            self.assertEqual(loads(raw), value)

    def test_lengths_use_the_shortest_head_too(self):
        self.assertEqual(dumps(b"x" * 24)[:2], b"\x58\x18")
        self.assertEqual(dumps("y" * 256)[:3], b"\x79\x01\x00")
        self.assertEqual(dumps([0] * 24)[:2], b"\x98\x18")

    def test_bytes_like_and_tuples(self):
        self.assertEqual(dumps(bytearray(b"\x01\x02")), b"\x42\x01\x02")
        self.assertEqual(dumps(memoryview(b"\x00\x01\x02")[1:]), b"\x42\x01\x02")
        self.assertEqual(dumps((1, (2,))), b"\x82\x01\x81\x02")

    def test_map_entries_keep_the_dict_order(self):
        mapping = {"cmd": "load", 7: [1, 2]}
        encoded = dumps(mapping)
        self.assertEqual(typed(loads(encoded)), typed(mapping))
        if DICTS_KEEP_ORDER:
            self.assertEqual(encoded, b"\xa2\x63cmd\x64load\x07\x82\x01\x02")

    def test_refuses_values_outside_the_subset(self):
        for value in (1.5, {1, 2}, object(), 2**64, -(2**64) - 1, [1, 2.0], {b"k": 1}, {(1,): 2}, {True: 1}, {None: 1}):
            with self.assertRaises(CborError):
                dumps(value)


class DecodeTest(unittest.TestCase):
    def test_cbor_error_is_a_protocol_error(self):
        with self.assertRaises(ProtocolError) as caught:
            loads(b"\xf9\x00\x00")
        self.assertEqual(str(caught.exception), "CBOR: floats are not supported")

    def test_accepts_bytearray_and_memoryview_refuses_str(self):
        self.assertEqual(loads(bytearray(b"\x82\x01\x41\x02")), [1, b"\x02"])
        self.assertEqual(loads(memoryview(b"\x00\x63abc\x00")[1:5]), "abc")
        with self.assertRaises(CborError):
            loads("\x00")

    def test_decoded_booleans_are_booleans(self):
        self.assertIs(loads(b"\xf5"), True)
        self.assertIs(loads(b"\xf4"), False)
        self.assertIs(loads(b"\xf6"), None)
        self.assertEqual(typed(loads(b"\x01")), ("int", 1))

    def test_non_shortest_heads_are_accepted(self):
        self.assertEqual(loads(b"\x18\x00"), 0)
        self.assertEqual(loads(b"\x1b\x00\x00\x00\x00\x00\x00\x00\x01"), 1)
        self.assertEqual(loads(b"\x59\x00\x01\x07"), b"\x07")
        self.assertEqual(loads(b"\x98\x01\x00"), [0])

    def test_reserved_additional_information_is_refused(self):
        for initial in (0x1C, 0x1D, 0x1E, 0x3C, 0x5D, 0x7E, 0x9C, 0xBD, 0xFC, 0xFD, 0xFE):
            with self.assertRaises(CborError):
                loads(bytes((initial,)))

    def test_indefinite_lengths_and_break_are_refused(self):
        for raw in (b"\x1f", b"\x3f", b"\x5f\xff", b"\x7f\xff", b"\x9f\xff", b"\xbf\xff", b"\xff"):
            with self.assertRaises(CborError):
                loads(raw)

    def test_every_prefix_of_a_valid_item_is_truncated(self):
        samples = (
            b"\x1b\x00\x00\x00\xe8\xd4\xa5\x10\x00",
            b"\x64\xf0\x90\x85\x91",
            b"\x44\x01\x02\x03\x04",
            b"\xa2\x61\x61\x01\x61\x62\x82\x02\x03",
            b"\x83\x01\x82\x02\x03\x82\x04\x05",
            b"\x3b\xff\xff\xff\xff\xff\xff\xff\xff",
        )
        for raw in samples:
            loads(raw)  # the whole item is fine
            for end in range(len(raw)):
                with self.assertRaises(CborError):
                    loads(raw[:end])

    def test_trailing_bytes_are_refused(self):
        for raw in (b"\x00\x00", b"\x80\x00", b"\x41\x00\x00", b"\xf6\xff"):
            with self.assertRaises(CborError) as caught:
                loads(raw)
            self.assertIn("left over", str(caught.exception))

    def test_depth_limit(self):
        self.assertEqual(loads(nested_arrays(16)), [[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]])
        with self.assertRaises(CborError):
            loads(nested_arrays(17))
        self.assertEqual(loads(nested_arrays(3), max_depth=3), [[[0]]])
        with self.assertRaises(CborError):
            loads(nested_arrays(4), max_depth=3)
        self.assertEqual(loads(b"\x05", max_depth=0), 5)
        with self.assertRaises(CborError):
            loads(b"\xa0", max_depth=0)
        # Maps count as a level too: {"a": [0]} is two levels.
        with self.assertRaises(CborError):
            loads(b"\xa1\x61\x61\x81\x00", max_depth=1)

    def test_a_deep_input_cannot_exhaust_the_stack(self):
        deep = b"\x81" * 5000 + b"\x00"
        with self.assertRaises(CborError):
            loads(deep)
        # Even with the limit lifted, running out of stack is a CborError.
        with self.assertRaises(CborError):
            loads(deep, max_depth=10**6)

    def test_duplicate_keys_are_refused(self):
        for raw in (b"\xa2\x01\x00\x01\x00", b"\xa2\x61\x6b\x00\x61\x6b\x01", b"\xa2\x18\x01\x00\x01\x00"):
            with self.assertRaises(CborError):
                loads(raw)
        self.assertEqual(loads(b"\xa2\x01\x00\x61\x01\x00"), {1: 0, "\x01": 0})

    def test_keys_must_be_int_or_str(self):
        for raw in (b"\xa1\x40\x00", b"\xa1\x80\x00", b"\xa1\xa0\x00", b"\xa1\xf5\x00", b"\xa1\xf6\x00"):
            with self.assertRaises(CborError):
                loads(raw)
        self.assertEqual(loads(b"\xa1\x20\x00"), {-1: 0})

    def test_huge_declared_lengths_fail_before_allocating(self):
        huge = (
            b"\x5b\x80\x00\x00\x00\x00\x00\x00\x00",  # bytes, 2**63
            b"\x7b\xff\xff\xff\xff\xff\xff\xff\xff",  # text, 2**64-1
            b"\x9b\x80\x00\x00\x00\x00\x00\x00\x00",  # array, 2**63
            b"\xbb\x40\x00\x00\x00\x00\x00\x00\x00\x00",  # map, 2**62
            b"\x5a\xff\xff\xff\xff",
            b"\x9a\x00\x00\x00\x02\x00",  # 2 items, only 1 byte left
            b"\xa2\x00\x00\x00",  # 2 entries need at least 4 bytes
        )
        for raw in huge:
            with self.assertRaises(CborError):
                loads(raw)

    def test_invalid_utf8_is_refused(self):
        bad = (
            b"\xff",
            b"\x80",  # a lone continuation byte
            b"a\xc3",  # cut in the middle of a character
            b"\xc3\x28",
            b"\xc0\x80",  # overlong NUL
            b"\xc1\xbf",
            b"\xe0\x80\xaf",  # overlong
            b"\xf0\x80\x80\xaf",  # overlong
            b"\xed\xa0\x80",  # a UTF-16 surrogate
            b"\xed\xbf\xbf",
            b"\xf4\x90\x80\x80",  # above U+10FFFF
            b"\xf5\x80\x80\x80",
            b"\xf8\x88\x80\x80\x80",
        )
        for chunk in bad:
            with self.assertRaises(CborError):
                loads(bytes((0x60 + len(chunk),)) + chunk)

    def test_valid_utf8_at_the_edges_is_accepted(self):
        good = (
            (b"\x7f", "\x7f"),
            (b"\xc2\x80", "\x80"),
            (b"\xe0\xa0\x80", "\u0800"),
            (b"\xed\x9f\xbf", "\ud7ff"),
            (b"\xee\x80\x80", "\ue000"),
            (b"\xef\xbf\xbf", "\uffff"),
            (b"\xf0\x90\x80\x80", "\U00010000"),
            (b"\xf4\x8f\xbf\xbf", "\U0010ffff"),
        )
        for chunk, text in good:
            self.assertEqual(loads(bytes((0x60 + len(chunk),)) + chunk), text)

    def test_round_trip_of_a_control_message(self):
        message = {"op": "load", "slot": 3, "sha256": b"\xab" * 32, "args": [-1, None, True, "\u00e9"]}
        self.assertEqual(typed(loads(dumps(message))), typed(message))
