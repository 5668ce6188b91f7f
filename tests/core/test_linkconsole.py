"""What the pedal's serial service looks for besides frames (tonecore.linkconsole): the
host's probe, and mpremote's way into the raw REPL, in reads of any size, in and around
link traffic; and the dupterm stream that types bytes into a board's REPL.  Runs on
CPython and MicroPython."""

import hashlib
import unittest

from tonecore import frame, link
from tonecore.linkconsole import PROBE, PROBED, TO_REPL, ConsoleWatch, TypedInput

MPREMOTE = b"\r\x03" + b"\r\x01"  # mpremote's two writes
PYBOARD = b"\r\x03\x03" + b"\r\x01"  # older pyboard.py: Ctrl-C twice


def scan_in_pieces(stream, size):
    """Everything ConsoleWatch finds in `stream` read `size` bytes at a time: [(end, found)]."""
    watch = ConsoleWatch()
    found = []
    for at in range(0, len(stream), size):
        piece = bytearray(stream[at:at + size])
        bits = watch.scan(piece, len(piece))
        if bits:
            found.append((at + len(piece), bits))
    return found


def noise(count, seed):
    """`count` bytes of a SHA-256 chain: every byte value turns up."""
    out = b""
    block = bytes([seed & 0xFF, count & 0xFF])
    while len(out) < count:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:count]


def link_traffic(seed, frames=40, inside=True):
    """What a host sends in a session: HELLO, then DATA frames of random bytes with the
    probe's and mpremote's bytes inside (`inside`: a model file may hold anything), each
    frame after the previous one's 0x00."""
    wire = bytearray(b"\x00") + link.control(1, link.HELLO, {link.K_VERSION: 1, link.K_NONCE: 5})
    for seq in range(2, frames):
        body = noise(1 + seq * 37 % 300, seed * 64 + seq)
        if inside:
            body += (PROBE, MPREMOTE, b"\x00" * 3 + PROBE, b"")[seq % 4]
        wire += frame.encode(link.DATA, seq, body, b"\x00\x00\x00\x00")
    return bytes(wire)


class ConsoleWatchTest(unittest.TestCase):
    def test_mpremote_and_pyboard_sequences_at_the_end_of_what_was_read(self):
        for sequence in (MPREMOTE, PYBOARD, b"\x03\r\x01"):
            for size in (1, 2, 3, 64):
                self.assertEqual(scan_in_pieces(sequence, size), [(len(sequence), TO_REPL)], (sequence, size))

    def test_the_sequence_after_a_cut_frame_from_a_killed_host(self):
        traffic = link_traffic(1, inside=False)
        cut = traffic[:len(traffic) - 37]  # the host died mid-frame
        for size in (1, 7, 4096):
            self.assertEqual(scan_in_pieces(cut + MPREMOTE, size), [(len(cut) + len(MPREMOTE), TO_REPL)])

    def test_the_sequence_followed_by_more_bytes_is_not_mpremote(self):
        self.assertEqual(ConsoleWatch().scan(MPREMOTE + b"x"), 0)
        watch = ConsoleWatch()
        self.assertEqual(watch.scan(MPREMOTE), TO_REPL)
        self.assertEqual(watch.scan(b"x"), 0)

    def test_without_a_ctrl_c_or_a_cr_there_is_no_sequence(self):
        for stream in (b"\r\x01", b"abc\r\x01", b"\x03x\r\x01", b"\x03\x01", b"\x03\r\x02"):
            self.assertEqual(scan_in_pieces(stream, 1), [], stream)
            self.assertEqual(scan_in_pieces(stream, 64), [], stream)

    def test_the_probe_anywhere_even_mid_session(self):
        traffic = link_traffic(2)
        for size in (1, 5, 4096):
            found = scan_in_pieces(traffic[:500] + PROBE + traffic[500:], size)
            self.assertTrue(any(bits & PROBED for _, bits in found), size)
        self.assertEqual(ConsoleWatch().scan(PROBE), PROBED)
        self.assertEqual(ConsoleWatch().scan(b"\x00\x00\r\x01\x00"), PROBED)  # after a cut frame's 0x00

    def test_link_traffic_is_never_the_probe_though_its_data_holds_those_bytes(self):
        for seed in range(3):
            traffic = link_traffic(seed, 30)
            self.assertGreater(traffic.count(b"\r\x01"), 10)  # COBS keeps the data's CR Ctrl-A...
            for size in (1, 3, 4096):
                found = scan_in_pieces(traffic, size)
                self.assertFalse([bits for _, bits in found if bits & PROBED], (seed, size))  # ...not its 0x00

    def test_link_traffic_read_a_frame_at_a_time_never_hands_over(self):
        traffic = link_traffic(5)
        watch = ConsoleWatch()
        start = 0
        while start < len(traffic):
            end = traffic.index(b"\x00", start) + 1  # a host pauses after a whole frame
            self.assertEqual(watch.scan(traffic[start:end]), 0)
            start = end


class TypedInputTest(unittest.TestCase):
    def test_types_its_bytes_once_then_puts_the_previous_stream_back(self):
        slots = ["webrepl"]
        calls = []

        def dupterm(stream, index):
            calls.append(index)
            previous, slots[0] = slots[0], stream
            return previous

        typed = TypedInput(b"\r\x01", dupterm)
        self.assertIs(slots[0], typed)
        self.assertEqual(typed.ioctl(3, 1), 1)  # poll: readable
        buf = bytearray(1)
        got = b""
        while typed.readinto(buf):
            got += bytes(buf)
        self.assertEqual(got, b"\r\x01")
        self.assertEqual(slots[0], "webrepl")
        self.assertEqual(calls, [0, 0])
        self.assertIsNone(typed.readinto(buf))  # nothing more, but never EOF
        self.assertEqual(typed.ioctl(3, 1), 0)
        self.assertEqual(typed.write(b"console output"), 14)


if __name__ == "__main__":
    unittest.main()
