"""The structure checks every arriving model file gets (tonecore.formats), on both runtimes."""

import struct
import unittest

from tonecore.download import Verifier
from tonecore.formats import FormatCheck, FormatError, check_kind
from tonecore.jsonscan import MAX_DEPTH

NAM = (b'{"version": "0.5.4", "metadata": {"name": "a \\"}{[ \\\\", "weights": 1}, "architecture": "WaveNet",\n'
       b' "config": {"layers": [{"channels": 4, "dilations": [1, 2]}], "head": null}, "weights": [0.1, -2e-3, 7],'
       b' "sample_rate": 48000}\n')
AIDA = b'{"model_data": {"unit_type": "LSTM", "hidden_size": 2}, "state_dict": {"lin.bias": [[0.5], [1]]}}'
RTNEURAL = b'{"in_shape": [null, null, 1], "layers": [{"type": "lstm", "weights": [[1, 2]]}]}'
SNAPSHOT = b'{"format": "aa-snapshot", "version": 2, "blocks": [{"type": "amp", "enabled": true}]}'


def wav(tag=1, channels=1, rate=48000, bits=16, frames=8, before=b"", extensible=False):
    """A WAV file; `before`: chunks put ahead of fmt."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits)
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x008\x9bq"
    body = b"WAVE" + before + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", align * frames)
    body += b"\x01" * (align * frames)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def check(name, data, platform=None, sizes=None, view=False):
    """Feed `data` in pieces of the `sizes` given (cycled), else whole; FormatError or None."""
    fc = FormatCheck(name, platform)
    at, turn = 0, 0
    source = memoryview(data) if view else data
    while at < len(data):
        step = sizes[turn % len(sizes)] if sizes else len(data)
        fc.feed(source[at:at + step])
        at += step
        turn += 1
    fc.verify(len(data))


def refusal(name, data, platform=None):
    """The message FormatError gives for `data`."""
    try:
        check(name, data, platform)
    except FormatError as exc:
        return exc.message
    raise AssertionError("%s was accepted" % name)


class JsonStructureTest(unittest.TestCase):
    def test_each_model_kind_with_its_structure_is_accepted(self):
        check("clean.nam", NAM)
        check("m.json", AIDA, "aida-x")
        check("m.json", AIDA, "proteus")
        check("m.aidax", RTNEURAL)
        check("rig.json", SNAPSHOT)
        check("rig.json", SNAPSHOT, "aa-snapshot")

    def test_every_split_of_the_stream_gives_the_same_answer(self):
        for sizes in ([1], [2], [3, 1, 5], [64]):
            check("clean.nam", NAM, sizes=sizes)
            check("clean.nam", NAM, sizes=sizes, view=True)
            self.assertIn('no "weights"', refusal_split(NAM.replace(b'"weights": [', b'"weightz": ['), sizes))
        seed = 5
        for turn in range(20):  # random splits (an LCG: the same on both runtimes)
            sizes = []
            for _ in range(9):
                seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
                sizes.append(1 + seed % 40)
            check("clean.nam", NAM, sizes=sizes, view=turn % 2 == 1)

    def test_a_file_cut_anywhere_is_refused(self):
        for end in range(len(NAM.rstrip())):
            self.assertRaises(FormatError, check, "clean.nam", NAM[:end])

    def test_what_is_missing_or_of_another_type_is_named(self):
        self.assertEqual(refusal("x.nam", NAM.replace(b'"config"', b'"konfig"')), 'x.nam is not a NAM model: no "config"')
        self.assertEqual(refusal("x.nam", NAM.replace(b'[0.1, -2e-3, 7]', b'"0.1"')),
                         'x.nam is not a NAM model: "weights" is a string, not an array')
        self.assertIn('"version" is a number', refusal("x.nam", NAM.replace(b'"0.5.4"', b'5')))
        self.assertIn('no "model_data"', refusal("a.json", b'{"a": 1}', "aida-x"))
        self.assertIn("not an AIDA-X model, a Proteus model or an aa-snapshot", refusal("a.json", b'{"a": 1}'))
        self.assertIn('no "blocks"', refusal("a.json", AIDA, "aa-snapshot"))

    def test_keys_count_only_at_the_top_and_never_inside_strings(self):
        # NAM's own "layers" is in its config: not an RTNeural file
        self.assertIn('no "model_data"', refusal("a.json", NAM, "aida-x"))
        nested = b'{"x": {"version": "1", "architecture": "A", "config": {}, "weights": []}}'
        self.assertIn('no "version"', refusal("x.nam", nested))
        in_string = b'{"note": "\\"version\\": \\"1\\", \\"weights\\": [", "architecture": "A", "config": {}}'
        self.assertIn('no "version"', refusal("x.nam", in_string))
        escaped = NAM.replace(b'"weights": [', b'"w\\u0065ights": [')  # a loader would see it; we do not
        self.assertIn('no "weights"', refusal("x.nam", escaped))

    def test_anything_but_one_object_is_refused(self):
        for data in (b"", b"   ", b"[1, 2]", b"<html>error</html>", b"\xef\xbb\xbf" + NAM):
            self.assertRaises(FormatError, check, "x.nam", data)
        self.assertIn("more after the JSON object at byte %d" % len(NAM), refusal("x.nam", NAM + b"{}"))
        self.assertIn("more after the JSON object", refusal("x.nam", NAM + b"x"))
        self.assertIn("] closes {", refusal("x.nam", NAM.replace(b'"head": null}', b'"head": null]')))
        self.assertIn("} closes [", refusal("x.nam", NAM.replace(b"7],", b"7},")))
        self.assertIn("a value was expected", refusal("x.nam", NAM.replace(b": 48000", b": ?")))

    def test_nesting_is_bounded(self):
        def deep(levels):
            return b'{"version": "1", "architecture": "A", "config": {"x": ' + b"[" * (levels - 2) + b"]" * (levels - 2) + \
                b'}, "weights": []}'

        check("x.nam", deep(MAX_DEPTH))
        self.assertIn("nested deeper than %d" % MAX_DEPTH, refusal("x.nam", deep(MAX_DEPTH + 1)))
        self.assertIn("nested deeper", refusal("x.nam", b"{" + b'"a": [' * 200))  # stops there: no stack to grow


def refusal_split(data, sizes):
    try:
        check("x.nam", data, sizes=sizes)
    except FormatError as exc:
        return exc.message
    return "accepted"


class WavStructureTest(unittest.TestCase):
    def test_the_formats_an_ir_loader_takes_are_accepted(self):
        for kw in ({}, {"bits": 24}, {"bits": 32}, {"tag": 3, "bits": 32}, {"channels": 2, "rate": 44100},
                   {"rate": 96000, "extensible": True, "bits": 24}, {"tag": 3, "bits": 32, "extensible": True}):
            check("cab.wav", wav(**kw))

    def test_chunks_before_fmt_are_walked_past_at_any_split(self):
        junk = b"JUNK" + struct.pack("<I", 301) + b"\x00" * 302  # odd size: padded
        data = wav(before=junk + b"LIST" + struct.pack("<I", 4) + b"INFO", bits=24)
        for sizes in (None, [1], [7], [3, 11, 2]):
            check("cab.wav", data, sizes=sizes)
            check("cab.wav", data, sizes=sizes, view=True)

    def test_what_a_loader_cannot_take_is_refused_with_why(self):
        self.assertIn("8-bit PCM samples", refusal("cab.wav", wav(bits=8)))
        self.assertIn("22050 Hz", refusal("cab.wav", wav(rate=22050)))
        self.assertIn("3 channels", refusal("cab.wav", wav(channels=3)))
        self.assertIn("64-bit float", refusal("cab.wav", wav(tag=3, bits=64)))
        self.assertIn("sample format 2", refusal("cab.wav", wav(tag=2)))
        self.assertIn("sample format 85", refusal("cab.wav", wav(tag=85, extensible=True)))

    def test_broken_files_are_refused(self):
        good = wav(frames=20)
        self.assertIn("truncated or padded", refusal("cab.wav", good[:-3]))
        self.assertIn("truncated or padded", refusal("cab.wav", good + b"\x00"))
        self.assertIn("no RIFF/WAVE header", refusal("cab.wav", b"RIFX" + good[4:]))
        self.assertIn("no RIFF/WAVE header", refusal("cab.wav", good[:10]))
        no_data = good[:36]
        no_data = b"RIFF" + struct.pack("<I", len(no_data) - 8) + no_data[8:]
        self.assertIn("no data chunk", refusal("cab.wav", no_data))
        data_first = b"RIFF" + struct.pack("<I", 16) + b"WAVEdata" + struct.pack("<I", 4) + b"\x00" * 4
        self.assertIn("no fmt chunk before the data", refusal("cab.wav", data_first))
        long_data = bytearray(good)
        long_data[40:44] = struct.pack("<I", 1000)
        self.assertIn("past the end", refusal("cab.wav", bytes(long_data)))


class KindTest(unittest.TestCase):
    def test_every_platform_of_the_api_has_a_structure(self):
        from tonecore.formats import STRUCTURES
        from tonecore.records import PLATFORMS

        self.assertEqual(sorted(STRUCTURES), sorted(PLATFORMS))

    def test_extension_and_platform_must_be_known_and_agree(self):
        self.assertEqual(check_kind("a.json"), ("aida-x", "proteus", "aa-snapshot"))
        self.assertEqual(check_kind("a.json", "proteus"), ("proteus",))
        self.assertEqual(refusal("notes.txt", b"{}"),
                         "notes.txt is not a model file tonebridge knows (.aidax, .json, .nam, .wav)")
        self.assertIn("'banana' is not a platform", refusal("clean.nam", NAM, "banana"))
        self.assertIn("a .wav file is an impulse response, not a NAM model", refusal("cab.wav", wav(), "nam"))
        self.assertIn("not a NAM model", refusal("m.json", NAM, "nam"))
        self.assertIn("not an aa-snapshot", refusal("m.aidax", SNAPSHOT, "aa-snapshot"))
        self.assertRaises(FormatError, check, "noext", NAM)

    def test_the_verifier_always_checks(self):
        verifier = Verifier("notes.txt")
        verifier.feed(b"hello")
        self.assertRaises(FormatError, verifier.finish, 5)
        verifier = Verifier("cab.wav", "ir")
        verifier.feed(memoryview(wav(rate=22050)))
        self.assertRaises(FormatError, verifier.finish)
        verifier.reset()
        data = wav()
        verifier.feed(data)
        self.assertEqual(len(verifier.finish(len(data))), 64)
