import struct
import unittest

from tonecore.errors import IntegrityError
from tonecore.formats import FormatCheck, FormatError, extension, fits, kind_of, platform_of, runnable
from tonecore.ratelimit import RateLimiter, retry_after_ms


def wav_bytes(frames=100):
    """A mono 16-bit 48 kHz PCM WAV file with `frames` samples."""
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + 2 * frames, b"WAVE", b"fmt ", 16, 1, 1, 48000, 96000, 2, 16, b"data", 2 * frames)
    return header + b"\x01\x00" * frames


def check(filename, data, pieces=7):
    fc = FormatCheck(filename)
    step = max(1, len(data) // pieces)
    for at in range(0, len(data), step):
        fc.feed(data[at : at + step])
    fc.verify(len(data))


class FormatTest(unittest.TestCase):
    def test_kinds(self):
        self.assertEqual([kind_of(n) for n in ("a.NAM", "b.json", "c.wav", "d.bin", "noext")], ["json", "json", "wav", None, None])

    def test_one_table_names_extensions_checks_and_platforms(self):
        self.assertEqual([extension(n) for n in ("Clean.NAM", "a.b.wav", "x.aidax", "noext", ".nam", "m.n4m", "m.toolongext")],
                         [".nam", ".wav", ".aidax", "", "", "", ""])
        self.assertEqual([platform_of(n) for n in ("a.nam", "b.wav", "c.json", "d.aidax", "e.bin")],
                         ["nam", "ir", "aida-x", "aida-x", None])

    def test_a_bad_format_is_a_format_error_an_integrity_error(self):
        with self.assertRaises(FormatError):
            check("m.nam", b"<html>error</html>")
        with self.assertRaises(IntegrityError):
            check("m.nam", b"<html>error</html>")

    def test_what_a_board_holds(self):
        formats = {"nam": ("nano", "feather"), "ir": "*"}
        self.assertTrue(runnable(formats, "nam", "nano") and runnable(formats, "ir", "standard"))
        self.assertFalse(runnable(formats, "nam", "standard") or runnable(formats, "aida-x", "nano"))
        self.assertTrue(fits(1024, 1024) and fits(None, 10 ** 9) and fits(0, 5))
        self.assertFalse(fits(1024, 1025))

    def test_json_model_ok_and_truncated(self):
        doc = b'  {"version": "0.5.4", "architecture": "WaveNet", "config": {}, "weights": [' + b"0.1, " * 500 + b"0.2]}\n"
        check("m.nam", doc)
        with self.assertRaises(IntegrityError):
            check("m.nam", doc[:-10])
        with self.assertRaises(IntegrityError):
            check("m.nam", b"<html>error</html>")

    def test_wav_ok_truncated_and_wrong(self):
        wav = wav_bytes(2000)
        check("ir.wav", wav)
        with self.assertRaises(IntegrityError):
            check("ir.wav", wav[:-100])
        with self.assertRaises(IntegrityError):
            check("ir.wav", b"RIFX" + wav[4:])

    def test_tiny_chunks_are_checked_as_one_stream(self):
        doc = b'{"layers": []}'
        fc = FormatCheck("x.json")
        for i in range(len(doc)):
            fc.feed(doc[i : i + 1])
        fc.verify(len(doc))

    def test_empty_file_is_never_valid(self):
        with self.assertRaises(IntegrityError):
            FormatCheck("x.bin").verify(0)


class RateLimiterTest(unittest.TestCase):
    def test_sliding_window(self):
        rl = RateLimiter(limit=2, window_ms=1000, margin_ms=0)
        self.assertEqual(rl.delay_ms(0), 0)
        rl.record(0)
        rl.record(100)
        self.assertEqual(rl.delay_ms(500), 500)
        rl.record(1000)
        self.assertEqual(rl.delay_ms(1000), 100)

    def test_block_for_retry_after(self):
        rl = RateLimiter()
        rl.block_for(0, 5000)
        self.assertEqual(rl.delay_ms(1000), 4000)
        self.assertEqual(rl.delay_ms(6000), 0)

    def test_retry_after_values(self):
        self.assertEqual(retry_after_ms("3"), 3000)
        self.assertEqual(retry_after_ms("1.5"), 1500)
        self.assertEqual(retry_after_ms(None), 1000)
        self.assertEqual(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 2000), 2000)
        self.assertEqual(retry_after_ms("99999"), 600000)

