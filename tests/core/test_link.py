import hashlib
import sys
import unittest

from tonecore import frame, link
from tonecore.errors import LinkError

from linksim import Line, MemoryStore, hello, push, request


# MicroPython runs these in a 128 KB heap: smaller files there
SCALE = 8 if sys.implementation.name == "micropython" else 1


def blob(size, seed=3):
    """`size` incompressible-looking bytes (a SHA-256 chain), zeros and 0x03 included
    (size divided by SCALE)."""
    size //= SCALE
    out = bytearray()
    block = bytes([seed])
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def uart_pedal(store=None, **kw):
    kw.setdefault("max_frame", 1024 + 16)
    kw.setdefault("window", 2048)
    kw.setdefault("rx_buffer", 240)
    return link.Pedal(store or MemoryStore(), **kw)


class FrameTest(unittest.TestCase):
    def test_round_trip_and_resync_after_garbage(self):
        payloads = [b"", b"\x00", b"\x03" * 300, blob(254), blob(255), blob(1000)]
        wire = bytearray(b"\x01\x02garbage")
        for seq, payload in enumerate(payloads):
            wire += b"\x00" + frame.encode(link.DATA, seq, payload)
        decoder = frame.Decoder(1100)
        got = []
        for at in range(0, len(wire), 97):
            for kind, seq, payload in decoder.feed(bytes(wire[at:at + 97])):
                got.append((kind, seq, bytes(payload)))
        self.assertEqual(got, [(link.DATA, seq, p) for seq, p in enumerate(payloads)])
        self.assertEqual(decoder.errors(), 1)  # the garbage
        self.assertEqual(frame.encode(link.DATA, 0, b"\x00" * 600)[:-1].find(b"\x00"), -1)

    def test_damage_is_counted_never_raised(self):
        good = frame.encode(link.CONTROL, 9, b"hello")
        flipped = bytearray(good)
        flipped[3] ^= 0x10
        decoder = frame.Decoder(64)
        self.assertEqual(list(decoder.feed(bytes(flipped))), [])
        self.assertEqual(decoder.bad_crc + decoder.bad_cobs, 1)
        self.assertEqual(list(decoder.feed(frame.encode(1, 1, b"x" * 100))), [])  # too long
        self.assertEqual(decoder.too_long, 1)
        self.assertEqual(list(decoder.feed(b"\x02a\x00")), [])  # too short
        self.assertEqual(decoder.too_short, 1)
        self.assertEqual([bytes(f[2]) for f in decoder.feed(good)], [b"hello"])

    def test_pulled_counts_bytes_after_the_last_good_frame(self):
        decoder = frame.Decoder(64)
        wire = frame.encode(1, 1, b"abc") + b"\x05\x06\x07"
        self.assertEqual(len(list(decoder.feed(bytes(wire)))), 1)
        self.assertEqual(decoder.pulled, 3)
        list(decoder.feed(b"\x08"))
        self.assertEqual(decoder.pulled, 4)


class SessionTest(unittest.TestCase):
    def test_hello_says_what_the_pedal_takes(self):
        pedal = uart_pedal()
        reply = hello(pedal, 1, 0)
        self.assertEqual(reply[link.K_TYPE], link.HELLO)
        self.assertEqual((reply[link.K_VERSION], reply[link.K_BOARD]), (link.VERSION, "memory"))
        self.assertEqual((reply[link.K_MAX_FRAME], reply[link.K_WINDOW], reply[link.K_RX_BUFFER]), (1040, 2048, 240))
        self.assertTrue(pedal.active)

    def test_requests_before_hello_and_wrong_version_are_refused(self):
        pedal = uart_pedal()
        reply = request(pedal, 1, link.LIST, {})
        self.assertEqual((reply[link.K_TYPE], reply[link.K_CODE]), (link.ERROR, link.E_NO_SESSION))
        reply = request(pedal, 2, link.HELLO, {link.K_VERSION: 99})
        self.assertEqual(reply[link.K_CODE], link.E_VERSION)
        self.assertFalse(pedal.active)

    def test_session_ends_after_silence_and_on_bye(self):
        pedal = uart_pedal()
        hello(pedal, 1, 0)
        pedal.tick(link.SESSION_MS - 1)
        self.assertTrue(pedal.active)
        pedal.tick(link.SESSION_MS)
        self.assertFalse(pedal.active)
        hello(pedal, 2, 0)
        request(pedal, 3, link.BYE, {})
        self.assertFalse(pedal.active)

    def test_garbage_control_messages_get_an_error(self):
        pedal = uart_pedal()
        hello(pedal, 1, 0)
        for payload in (b"", b"\xff", b"\x81\x01", b"\xa1\x00\x61x"):  # not CBOR, not a map, bad type
            out = pedal.receive(bytes(frame.encode(link.CONTROL, 5 + len(payload), payload)), 0)
            replies = [link.parse_control(p) for k, s, p in frame.Decoder(256).feed(bytes(out)) if k == link.CONTROL]
            self.assertEqual(replies[0][link.K_CODE], link.E_BAD_REQUEST, payload)


class PushTest(unittest.TestCase):
    def check_installed(self, store, data, model_id=1):
        self.assertEqual(store.installed[model_id][0], data)

    def test_clean_push_at_115200_fills_the_line_without_overflow(self):
        store = MemoryStore()
        data = blob(40000)
        line = Line(rate=12, ring=260)  # 115200 baud: 11.5 bytes per ms
        sender, ms, reply = push(uart_pedal(store), data, line=line)
        self.assertEqual(reply[link.K_TYPE], link.COMMIT, reply)
        self.assertEqual(reply[link.K_SHA], hashlib.sha256(data).digest())
        self.check_installed(store, data)
        self.assertEqual(line.overflow, 0)
        self.assertEqual((sender.rewinds, sender.resent), (0, 0))
        self.assertGreater(len(data) / (ms * 12.0), 0.93)  # simulated time: credit keeps the line busy

    def test_a_pedal_that_stops_reading_loses_nothing(self):
        # the pedal is busy for 120 ms (a flash erase): the host must not overrun its ring
        store = MemoryStore()
        data = blob(20000)
        line = Line(rate=12, ring=260)
        sender, ms, reply = push(uart_pedal(store), data, line=line, stall=(300, 420))
        self.assertEqual(reply[link.K_TYPE], link.COMMIT, reply)
        self.assertEqual(line.overflow, 0)
        self.assertEqual(sender.rewinds, 0)

    def test_drops_and_flips_are_sent_again(self):
        for seed in (1, 2, 3):
            store = MemoryStore()
            data = blob(30000, seed)
            line = Line(rate=12, ring=260, drop=1e-4, ber=1e-4, seed=seed)
            sender, ms, reply = push(uart_pedal(store), data, line=line)
            self.assertEqual(reply[link.K_TYPE], link.COMMIT, reply)
            self.check_installed(store, data)
            self.assertGreater(line.dropped + line.flipped, 0)
            self.assertGreater(sender.rewinds, 0)

    def test_fast_link_without_a_ring_uses_big_frames(self):
        store = MemoryStore()
        data = blob(60000)
        big = 4096 if SCALE == 1 else 1024
        pedal = link.Pedal(store, max_frame=big + 16, window=4 * big, rx_buffer=0)
        sender, ms, reply = push(pedal, data, line=Line(rate=140, ring=0))
        self.assertEqual(reply[link.K_TYPE], link.COMMIT, pedal.failure)
        self.assertEqual(sender.payload, big + 16 - frame.WIRE_OVERHEAD - link.DATA_HEADER)
        self.check_installed(store, data)

    def test_resume_after_a_disconnect_sends_at_most_a_window_again(self):
        store = MemoryStore()
        data = blob(30000)
        pedal = uart_pedal(store)
        line = Line(rate=12, ring=260)
        with self.assertRaises(AssertionError):  # the "cable" is pulled after 1.2 s
            push(pedal, data, line=line, max_ms=1200 // SCALE)
        received = pedal.transfer[2]
        pedal.end_session()  # the pedal notices the silence; the .part is flushed
        self.assertGreater(received, len(data) // 4)
        self.assertEqual(store.stat(1, len(data), hashlib.sha256(data).digest()), (received, False))
        sender, ms, reply = push(pedal, data, line=Line(rate=12, ring=260))
        self.assertEqual(sender.start, received)
        self.assertEqual(reply[link.K_TYPE], link.COMMIT)
        self.check_installed(store, data)

    def test_wrong_hash_is_refused_and_nothing_installed(self):
        store = MemoryStore()
        data = blob(5000)
        sender, ms, reply = push(uart_pedal(store), data, meta={link.K_SHA: b"\x01" * 32})
        self.assertEqual((reply[link.K_TYPE], reply[link.K_CODE]), (link.ERROR, link.E_INTEGRITY))
        self.assertEqual(store.installed, {})

    def test_no_space_is_a_clean_error(self):
        sender, ms, reply = push(uart_pedal(MemoryStore(capacity=100)), blob(5000))
        self.assertEqual((reply[link.K_TYPE], reply[link.K_CODE]), (link.ERROR, link.E_NO_SPACE))

    def test_the_sender_gives_up_when_the_pedal_is_gone(self):
        sender = link.Sender(10000, 0, 1040, 2048, 240, rto_ms=100, max_failures=3)
        with self.assertRaises(LinkError):
            for now in range(0, 1000, 10):
                chunk = sender.next_chunk()
                if chunk:  # sent, and never acknowledged
                    sender.data_queued(now & 0xFFFF, chunk[0], chunk[1], chunk[1] + 15)
                    sender.written(200)
                sender.check(now)
        self.assertEqual(sender.timeouts, 4)


class ManageTest(unittest.TestCase):
    def setUp(self):
        self.store = MemoryStore()
        self.pedal = uart_pedal(self.store, max_frame=400)
        for model_id in range(1, 13):
            push(self.pedal, blob(100 + model_id, model_id), model_id=model_id, max_payload=64)

    def test_list_pages_through_every_model(self):
        hello(self.pedal, 1, 0)
        seen = []
        start = 0
        while True:
            reply = request(self.pedal, 10 + start, link.LIST, {link.K_START: start})
            self.assertEqual(reply[link.K_TOTAL], 12)
            seen += [item[0] for item in reply[link.K_MODELS]]
            start += len(reply[link.K_MODELS])
            if start >= reply[link.K_TOTAL]:
                break
        self.assertEqual(seen, list(range(1, 13)))
        self.assertEqual(reply[link.K_ACTIVE], 1)

    def test_activate_and_delete(self):
        hello(self.pedal, 1, 0)
        self.assertEqual(request(self.pedal, 2, link.ACTIVATE, {link.K_ID: 5})[link.K_TYPE], link.ACTIVATE)
        self.assertEqual(self.store.active, 5)
        self.assertEqual(request(self.pedal, 3, link.DELETE, {link.K_ID: 7})[link.K_TYPE], link.DELETE)
        self.assertNotIn(7, self.store.installed)
        reply = request(self.pedal, 4, link.DELETE, {link.K_ID: 7})
        self.assertEqual((reply[link.K_TYPE], reply[link.K_CODE]), (link.ERROR, link.E_NOT_FOUND))

    def test_a_repeated_request_is_answered_not_redone(self):
        hello(self.pedal, 1, 0)
        first = request(self.pedal, 2, link.DELETE, {link.K_ID: 3})
        second = request(self.pedal, 2, link.DELETE, {link.K_ID: 3})  # our reply was lost
        self.assertEqual(first, second)
        self.assertEqual(first[link.K_TYPE], link.DELETE)
