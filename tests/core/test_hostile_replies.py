"""Replies a hostile or broken server sends: each is refused cleanly (both runtimes)."""

import unittest

from tonecore.compat import json
from tonecore.errors import ProtocolError
from tonecore.http import Response
from tonecore.ratelimit import retry_after_ms


class RetryAfterTest(unittest.TestCase):
    def test_nan_inf_and_negative_are_treated_as_absent(self):
        for value in ("nan", "NaN", "inf", "-inf", "-5", "1e999", "Infinity"):
            self.assertEqual(retry_after_ms(value, 1234), 1234, value)
        self.assertEqual(retry_after_ms("2.5", 0), 2500)


class JsonTest(unittest.TestCase):
    def test_deeply_nested_json_parses_or_is_a_protocol_error(self):
        # Too deep for the parser (CPython: RecursionError; MicroPython: out of memory)
        # is a ProtocolError, never anything else.
        refused = 0
        for depth in (4000, 12000):
            body = b"[" * depth + b"]" * depth
            try:
                value = Response(200, {}, body, "https://h/x").json()
            except ProtocolError:
                refused += 1
            else:
                self.assertEqual(type(value), list)
            body = None
        self.assertGreater(refused, 0)

    def test_errors_name_the_url_without_its_query(self):
        with self.assertRaises(ProtocolError) as caught:
            Response(200, {}, b"{", "https://h/x?sig=SECRET").json()
        self.assertNotIn("SECRET", str(caught.exception))
        self.assertEqual(json.loads("[1]"), [1])

