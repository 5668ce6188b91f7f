"""The host end's DATA stream (tonecore.linkhost.HostEnd and Transfer) against the real
pedal end over a simulated line (linksim): rewinds after a gap or a timeout, the
cut-frame rule, giving up, re-PUT after a pedal restart, a file that changes, and the
compression choice.  Runs on CPython and MicroPython."""

import struct
import unittest

from tonecore import link
from tonecore.errors import LinkBroken, UsageError
from tonecore.linkhost import PLAIN_AFTER_MISS, TRANSFER_FAILURES, HostEnd

from linksim import Line, SimLink, frames
from memorypedal import Blob, MemoryStore, uart_pedal


class TransferTest(unittest.TestCase):
    def test_a_gap_rewinds_to_the_pedals_next_offset(self):
        store = MemoryStore()
        file = Blob(16000)
        line = Line(rate=12, ring=260, cuts=((600, 5),))  # five bytes of a DATA frame never arrive
        sim = SimLink(uart_pedal(store, window=4096), line)  # (a UART's window: frames behind it tell)
        report = sim.push(file)
        self.assertEqual(line.dropped, 5)
        self.assertTrue(file.matches(store.installed[1][0]))
        self.assertEqual((report.rewinds, report.timeouts), (1, 0))  # the gap said so: no timeout
        self.assertGreater(report.resent, 0)
        self.assertEqual(line.overflow, 0)

    def start_transfer(self, **kw):
        """A SimLink whose push has just started sending DATA, in frames that fit the
        pedal's 240 bytes of credit."""
        store = MemoryStore()
        file = Blob(16000)
        sim = SimLink(uart_pedal(store, max_frame=200), **kw)
        fields = {link.K_ID: 1, link.K_SIZE: len(file), link.K_SHA: file.sha256(), link.K_FILENAME: "m.nam"}
        sim.host.push(fields, file.read, 0)
        while not sim.host.sending and not sim.host.done():
            sim.step()
        self.assertTrue(sim.host.sending, "the push did not get to DATA")
        return sim, store, file

    def test_a_frame_cut_by_a_rewind_is_ended_with_a_zero(self):
        sim, store, file = self.start_transfer()
        host = sim.host
        half = host.to_write(10)  # ten bytes of the first DATA frame go out...
        self.assertEqual(frames(half), [])
        sim.line.queue.put(half, len(half))
        host.written(len(half))
        sim.now += host.rto_ms
        host.tick(sim.now)  # ...then nothing is acknowledged for an RTO: go back
        self.assertEqual(host.transfer.rewinds, 1)
        self.assertEqual(host.transfer.queued, host.transfer.written_total + 1)  # only a 0x00 waits
        self.assertEqual(host.to_write(), b"\x00")  # the cut frame is ended...
        sim.line.queue.put(b"\x00", 1)
        host.written(1)
        again = frames(host.to_write())  # ...then the first frame again, whole
        self.assertEqual([(kind, struct.unpack("<I", payload[:4])[0]) for kind, _, payload in again], [(link.DATA, 0)])
        damaged = sim.pedal.decoder.errors()
        report = sim.run()  # ...and the pedal drops it and reads the next frame whole
        self.assertEqual(sim.pedal.decoder.errors(), damaged + 1)
        self.assertTrue(file.matches(store.installed[1][0]))
        self.assertEqual(report.sha256, sim.host.report.sha256)

    def test_a_rewind_between_frames_adds_no_zero(self):
        sim, store, file = self.start_transfer()
        host = sim.host
        whole = host.to_write()  # the whole first frame goes out
        self.assertEqual(len(frames(whole)), 1)
        host.written(len(whole))
        sim.now += host.rto_ms
        host.tick(sim.now)
        self.assertEqual(host.transfer.rewinds, 1)
        self.assertNotEqual(host.to_write()[0], 0)  # the next frame starts at once

    def test_a_pedal_that_stops_answering_mid_push_breaks_the_link(self):
        sim, store, file = self.start_transfer(host=HostEnd(rto_ms=100, retries=2, max_reply=256))
        sim.stall = (0, 1 << 30)  # the pedal reads nothing any more
        with self.assertRaises(LinkBroken) as broken:
            sim.run()
        self.assertIn("timeouts in a row", str(broken.exception))
        self.assertEqual(sim.host.transfer.timeouts, 2 + TRANSFER_FAILURES + 1)
        self.assertFalse(sim.host.sending)

    def test_a_file_that_changes_while_it_is_sent_fails_the_push_and_leaves_the_link_usable(self):
        store = MemoryStore()
        file = Blob(8000)
        sim = SimLink(uart_pedal(store))
        fields = {link.K_ID: 1, link.K_SIZE: len(file) + 100, link.K_SHA: file.sha256(),  # 100 bytes short
                  link.K_FILENAME: "m.nam"}
        sim.host.push(fields, file.read, 0)
        with self.assertRaises(UsageError) as changed:
            sim.run()
        self.assertIn("changed", str(changed.exception))
        self.assertEqual(sim.request(link.LIST, {link.K_START: 0})[link.K_TOTAL], 0)

    def test_a_pedal_that_restarted_mid_push_gets_the_put_again_and_resumes(self):
        store = MemoryStore()
        file = Blob(16000)
        sim = SimLink(uart_pedal(store, flush_every=512))
        fields = {link.K_ID: 1, link.K_SIZE: len(file), link.K_SHA: file.sha256(), link.K_FILENAME: "m.nam"}
        sim.host.push(fields, file.read, 0)
        while sim.host.transfer is None or sim.host.transfer.acked < len(file) // 2:
            self.assertFalse(sim.host.done(), "the push ended before half the file was acknowledged")
            sim.step()
        sim.pedal = uart_pedal(store, flush_every=512)  # a reset: only what was flushed is kept
        report = sim.run()  # DATA meets no transfer, PUT meets no session: HELLO, PUT, resume
        self.assertEqual((report.resumes, report.resumed_from), (1, 0))
        self.assertGreater(sim.host.transfer.start, 0)
        self.assertTrue(file.matches(store.installed[1][0]))


def toy_deflate(data):
    """A stand-in for zlib (absent on MicroPython): a run of one byte value packs to 3 bytes."""
    if data and data.count(data[0:1]) == len(data):
        return bytes([data[0], len(data) & 0xFF, len(data) >> 8])
    return bytes(data) + b"!"  # anything else grows


def toy_inflate(packed, out):
    count = min(packed[1] | packed[2] << 8, len(out))
    out[:count] = bytes([packed[0]]) * count
    return count


class CompressionTest(unittest.TestCase):
    def push(self, file, inflate=toy_inflate):
        calls = []

        def deflate(data):
            calls.append(len(data))
            return toy_deflate(data)

        store = MemoryStore()
        pedal = uart_pedal(store, inflate=inflate)
        sim = SimLink(pedal, host=HostEnd(rto_ms=300, batch_bytes=1024, max_reply=256, compress=deflate))
        report = sim.push(file)
        self.assertTrue(file.matches(store.installed[1][0]))
        return report, calls, sim.host.transfer.payload

    def test_chunks_that_shrink_go_deflated_and_after_one_that_does_not_the_next_go_plain(self):
        file = Blob(64000, zeros=32000)
        report, calls, payload = self.push(file)
        self.assertEqual((report.rewinds, report.sent), (0, len(file)))  # (so every chunk is `payload` long)
        chunks = (len(file) + payload - 1) // payload
        zero_chunks = file.zeros // payload
        self.assertEqual(report.compressed_frames, zero_chunks)
        # each chunk that did not shrink (the first is half zeros) is followed by
        # PLAIN_AFTER_MISS chunks that are not even tried
        misses = len(calls) - report.compressed_frames
        self.assertEqual(misses, (chunks - zero_chunks + PLAIN_AFTER_MISS) // (PLAIN_AFTER_MISS + 1))

    def test_a_pedal_that_cannot_inflate_gets_plain_data(self):
        report, calls, _ = self.push(Blob(16000, zeros=16000), inflate=None)
        self.assertEqual((report.compressed_frames, calls), (0, []))
