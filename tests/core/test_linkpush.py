"""Whole pushes: the host end (tonecore.linkhost.HostEnd) and the pedal's end
(tonecore.link.PedalEnd) over a simulated line (linksim): line rate, a pedal that stops
reading, drops and bit flips, resume, refusals.  Runs on CPython and MicroPython."""

import unittest

from tonecore import frame, link
from tonecore.compat import hexlify
from tonecore.errors import PedalRefused

from linksim import Line, push
from memorypedal import SCALE, Blob, MemoryStore, uart_pedal


class PushTest(unittest.TestCase):
    def check_installed(self, store, file, model_id=1):
        self.assertTrue(file.matches(store.installed[model_id][0]))

    def test_clean_push_at_115200_fills_the_line_without_overflow(self):
        store = MemoryStore()
        file = Blob(40000)
        line = Line(rate=12, ring=260)  # 115200 baud: 11.5 bytes per ms
        report, sim = push(uart_pedal(store), file, line=line)
        self.assertEqual(report.sha256, hexlify(file.sha256()))
        self.check_installed(store, file)
        self.assertEqual(line.overflow, 0)
        transfer = sim.host.transfer
        self.assertEqual((transfer.rewinds, transfer.resent, report.sent), (0, 0, len(file)))
        # simulated time, PUT to COMMIT: credit keeps the line busy
        self.assertGreater(len(file) / (report.elapsed_s * 1000 * 12.0), 0.93)

    def test_a_pedal_that_stops_reading_loses_nothing(self):
        # the pedal is busy for 120 ms (a flash erase): the host must not overrun its ring
        store = MemoryStore()
        file = Blob(20000)
        line = Line(rate=12, ring=260)
        report, sim = push(uart_pedal(store), file, line=line, stall=(300, 420))
        self.check_installed(store, file)
        self.assertEqual(line.overflow, 0)
        self.assertEqual(report.rewinds, 0)

    def test_drops_and_flips_are_sent_again(self):
        for seed in (1, 2, 3):
            self.push_through_faults(seed)  # (a call per seed: one push's objects alive at a time)

    def push_through_faults(self, seed):
        store = MemoryStore()
        file = Blob(30000, seed)
        line = Line(rate=12, ring=260, drop=1e-4, ber=1e-4, seed=seed)
        report, sim = push(uart_pedal(store), file, line=line)
        self.check_installed(store, file)
        self.assertGreater(line.dropped + line.flipped, 0)
        self.assertGreater(report.rewinds, 0)

    def test_fast_link_without_a_ring_uses_big_frames(self):
        store = MemoryStore()
        file = Blob(60000)
        big = 4096 if SCALE == 1 else 1024
        pedal = link.PedalEnd(store, max_frame=big + 16, window=4 * big, rx_buffer=0)
        report, sim = push(pedal, file, line=Line(rate=140, ring=0))
        self.assertEqual(sim.host.transfer.payload, big + 16 - frame.WIRE_OVERHEAD - link.DATA_HEADER)
        self.check_installed(store, file)

    def test_resume_after_a_disconnect_sends_at_most_a_window_again(self):
        store = MemoryStore()
        file = Blob(30000)
        pedal = uart_pedal(store)
        with self.assertRaises(AssertionError):  # the "cable" is pulled after 1.2 s
            push(pedal, file, max_ms=1200 // SCALE)
        received = pedal.transfer[2]
        pedal.end_session()  # the pedal notices the silence; the .part is flushed
        self.assertGreater(received, len(file) // 4)
        self.assertEqual(store.stat(1, len(file), file.sha256()), (received, False))
        report, sim = push(pedal, file)
        self.assertEqual(report.resumed_from, received)
        self.assertEqual(report.sent, len(file) - received)
        self.check_installed(store, file)

    def test_wrong_hash_is_refused_and_nothing_installed(self):
        store = MemoryStore()
        with self.assertRaises(PedalRefused) as refused:
            push(uart_pedal(store), Blob(5000), meta={link.K_SHA: b"\x01" * 32})
        self.assertEqual(refused.exception.code, link.E_INTEGRITY)
        self.assertEqual(store.installed, {})

    def test_the_host_end_sends_a_name_the_pedal_takes(self):
        store = MemoryStore()
        push(uart_pedal(store), Blob(3000), meta={link.K_NAME: "Clean\tBright\n" + "x" * 80})
        self.assertEqual(store.installed[1][1]["name"], "Clean Bright " + "x" * 51)  # 64 characters

    def test_no_space_is_a_clean_error(self):
        with self.assertRaises(PedalRefused) as refused:
            push(uart_pedal(MemoryStore(capacity=100)), Blob(5000))
        self.assertEqual(refused.exception.code, link.E_NO_SPACE)
