"""The QR encoder on both runtimes: a device sign-in's address, and what it costs."""

import gc
import unittest

from tonecore.qr import QrCode, svg_parts, text_lines

ADDRESS = "https://www.tone3000.com/activate?user_code=BCDF-GHJK"


class QrTest(unittest.TestCase):
    def test_a_sign_in_address_fits_version_3(self):
        code = QrCode(ADDRESS)
        self.assertEqual((code.version, code.size), (3, 29))
        for x in range(7):  # the top-left finder's outer ring
            self.assertTrue(code.dark(x, 0) and code.dark(0, x) and code.dark(x, 6))
        self.assertFalse(code.dark(7, 0))  # its separator
        self.assertTrue(code.dark(8, code.size - 8))  # the dark module

    def test_it_keeps_little_heap(self):
        if not hasattr(gc, "mem_alloc"):  # CPython: the heap is MicroPython's question
            return
        gc.collect()
        before = gc.mem_alloc()
        code = QrCode(ADDRESS)
        gc.collect()
        kept = gc.mem_alloc() - before
        self.assertLess(kept, 2048)  # the 29 x 29 modules and the object
        pieces = 0
        for part in svg_parts(code):
            pieces += 1
        self.assertGreater(pieces, 50)
        self.assertEqual(len(list(text_lines(code))), 33)
