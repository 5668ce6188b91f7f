"""Frames, and the pedal's end of the USB link (tonecore.link.PedalEnd) answering
requests straight into it.  Whole pushes from the host end over a simulated line are in
test_linkpush.py, the host end's own policies in test_linkhost.py.  Runs on CPython and
MicroPython."""

import unittest

from tonecore import frame, link

from memorypedal import MemoryStore, blob, hello, pedal_reply, uart_pedal


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
        reply = pedal_reply(pedal, 1, link.LIST, {})
        self.assertEqual((reply[link.K_TYPE], reply[link.K_CODE]), (link.ERROR, link.E_NO_SESSION))
        reply = pedal_reply(pedal, 2, link.HELLO, {link.K_VERSION: 99})
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
        pedal_reply(pedal, 3, link.BYE, {})
        self.assertFalse(pedal.active)

    def test_garbage_control_messages_get_an_error(self):
        pedal = uart_pedal()
        hello(pedal, 1, 0)
        for payload in (b"", b"\xff", b"\x81\x01", b"\xa1\x00\x61x"):  # not CBOR, not a map, bad type
            out = pedal.receive(bytes(frame.encode(link.CONTROL, 5 + len(payload), payload)), 0)
            replies = [link.parse_control(p) for k, s, p in frame.Decoder(256).feed(bytes(out)) if k == link.CONTROL]
            self.assertEqual(replies[0][link.K_CODE], link.E_BAD_REQUEST, payload)

    def test_nothing_to_say_is_empty_and_an_answer_is_whole_frames(self):
        pedal = uart_pedal()
        self.assertEqual(pedal.receive(b"\x01\x02", 0), b"")  # no frame ended: no answer
        hello_frame = bytes(link.control(1, link.HELLO, {link.K_VERSION: link.VERSION}))
        self.assertEqual(pedal.receive(hello_frame, 0), b"")  # glued to the garbage: damaged
        out = pedal.receive(b"\x00" + hello_frame, 0)  # (why a host's HELLO starts with 0x00)
        self.assertEqual([k for k, s, p in frame.Decoder(256).feed(bytes(out))], [link.CONTROL, link.ACK])
        self.assertIsNone(pedal.out)  # nothing is held between calls


class ManageTest(unittest.TestCase):
    def setUp(self):
        self.store = MemoryStore()
        self.pedal = uart_pedal(self.store, max_frame=400)
        for model_id in range(1, 13):
            self.store.add_model(model_id, blob(100 + model_id, model_id))

    def test_list_pages_through_every_model(self):
        hello(self.pedal, 1, 0)
        seen = []
        start = 0
        pages = 0
        while True:
            reply = pedal_reply(self.pedal, 10 + start, link.LIST, {link.K_START: start})
            self.assertEqual(reply[link.K_TOTAL], 12)
            seen += [item[0] for item in reply[link.K_MODELS]]
            start += len(reply[link.K_MODELS])
            pages += 1
            if start >= reply[link.K_TOTAL]:
                break
        self.assertEqual(seen, list(range(1, 13)))
        self.assertGreater(pages, 1)  # a 400-byte frame does not hold them all
        self.assertEqual(reply[link.K_ACTIVE], 1)

    def test_activate_and_delete(self):
        hello(self.pedal, 1, 0)
        self.assertEqual(pedal_reply(self.pedal, 2, link.ACTIVATE, {link.K_ID: 5})[link.K_TYPE], link.ACTIVATE)
        self.assertEqual(self.store.active, 5)
        self.assertEqual(pedal_reply(self.pedal, 3, link.DELETE, {link.K_ID: 7})[link.K_TYPE], link.DELETE)
        self.assertNotIn(7, self.store.installed)
        reply = pedal_reply(self.pedal, 4, link.DELETE, {link.K_ID: 7})
        self.assertEqual((reply[link.K_TYPE], reply[link.K_CODE]), (link.ERROR, link.E_NOT_FOUND))

    def test_a_repeated_request_is_answered_not_redone(self):
        hello(self.pedal, 1, 0)
        first = pedal_reply(self.pedal, 2, link.DELETE, {link.K_ID: 3})
        second = pedal_reply(self.pedal, 2, link.DELETE, {link.K_ID: 3})  # our reply was lost
        self.assertEqual(first, second)
        self.assertEqual(first[link.K_TYPE], link.DELETE)
