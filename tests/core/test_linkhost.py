"""The host's end of the USB link (tonecore.linkhost.HostEnd): requests and their
retries, HELLO, sessions, LIST paging, giving up.  Against the real pedal end over a
simulated line (linksim), or fed by hand.  Its DATA stream is in test_linktransfer.py.
Runs on CPython and MicroPython."""

import unittest

from tonecore import link
from tonecore.errors import LinkBroken, PedalRefused, UsageError
from tonecore.linkhost import IDLE_MS, LIST_RETRIES, HostEnd

from linksim import Recorder, SimLink, frames
from memorypedal import MemoryStore, blob, uart_pedal


def run_silent(host, until_ms=100000):
    """Tick a HostEnd nobody answers, writing out all it has; the frames it wrote."""
    written = []
    now = 0
    while not host.done() and now < until_ms:
        data = host.to_write()
        host.written(len(data))
        written += frames(data)
        now += 10
        host.tick(now)
    return written


class RequestTest(unittest.TestCase):
    def test_a_lost_reply_is_asked_for_again_with_the_same_seq_and_answered_from_the_cache(self):
        store = MemoryStore()
        store.add_model(3, blob(100))
        lost = []

        def lose_first_delete(reply, answer):
            if reply[link.K_TYPE] == link.DELETE and not lost:
                lost.append(reply)
                return True
            return False

        recorder = Recorder(lose_first_delete)
        sim = SimLink(uart_pedal(store), deliver=recorder)
        reply = sim.request(link.DELETE, {link.K_ID: 3})
        self.assertEqual(reply[link.K_TYPE], link.DELETE)  # not "not found": done once, answered twice
        deletes = [(seq, code) for seq, kind, code in recorder.seen if kind == link.DELETE]
        self.assertEqual(len(deletes), 2)
        self.assertEqual(deletes[0], deletes[1])  # same seq
        self.assertNotIn(3, store.installed)

    def test_a_refusal_carries_the_pedals_code_and_the_link_goes_on(self):
        sim = SimLink(uart_pedal())
        with self.assertRaises(PedalRefused) as refused:
            sim.request(link.DELETE, {link.K_ID: 42})
        self.assertEqual(refused.exception.code, link.E_NOT_FOUND)
        self.assertIn("not installed", str(refused.exception))
        self.assertEqual(sim.request(link.LIST, {link.K_START: 0})[link.K_TOTAL], 0)

    def test_one_operation_at_a_time(self):
        host = HostEnd(max_reply=256)
        host.request(link.LIST, {}, 0)
        with self.assertRaises(UsageError):
            host.request(link.LIST, {}, 0)
        with self.assertRaises(UsageError):
            host.result()


class SessionTest(unittest.TestCase):
    def test_the_hello_frame_never_holds_a_ctrl_c(self):
        # a nonce of 3 puts a 0x03 in the frame (the test would catch a host that sent it)
        self.assertGreaterEqual(link.control(1, link.HELLO, {link.K_VERSION: 1, link.K_NONCE: 3}).find(b"\x03"), 0)
        values = [0x100, 3, 3, 0x0303, 1000, 1001, 1002, 1003, 1004]

        def bits(count):
            return values.pop(0) if values else 77

        host = HostEnd(max_reply=256, random_bits=bits)
        host.open_session(0)
        data = host.to_write()
        self.assertEqual(data[0], 0)  # a 0x00 first: whatever came before is ended
        self.assertEqual(data.find(b"\x03"), -1)
        hello = link.parse_control(frames(data)[0][2])
        self.assertNotIn(hello[link.K_NONCE], (3, 0x0303))
        for _ in range(100):  # and with real random nonces
            host = HostEnd(max_reply=64)
            host.open_session(0)
            self.assertEqual(host.to_write().find(b"\x03"), -1)

    def test_a_silent_port_gives_up_after_the_retries_with_a_new_nonce_each_time(self):
        host = HostEnd(rto_ms=100, retries=3, max_reply=256)
        host.open_session(0)
        written = run_silent(host)
        hellos = [(seq, link.parse_control(payload)[link.K_NONCE]) for kind, seq, payload in written]
        self.assertEqual(len(hellos), 4)  # the first and 3 retries
        self.assertEqual(len(set(seq for seq, _ in hellos)), 4)
        with self.assertRaises(LinkBroken) as broken:
            host.result()
        self.assertIn("no answer from a pedal", str(broken.exception))
        self.assertIsNone(host.info)

    def test_an_unanswered_request_is_sent_again_then_the_link_is_broken(self):
        pedal = uart_pedal()
        sim = SimLink(pedal, host=HostEnd(rto_ms=100, retries=2, max_reply=256))
        sim.host.open_session(0)
        sim.run()
        sim.deliver = lambda answer: False  # the way back is cut
        sim.host.request(link.STAT, {link.K_ID: 1}, sim.now)
        with self.assertRaises(LinkBroken) as broken:
            sim.run()
        self.assertIn("no reply to a request 3 times", str(broken.exception))

    def test_a_pedal_that_lost_the_session_gets_a_new_hello(self):
        recorder = Recorder()
        pedal = uart_pedal()
        sim = SimLink(pedal, deliver=recorder)
        sim.host.open_session(0)
        sim.run()
        pedal.end_session()  # it restarted
        self.assertEqual(sim.request(link.LIST, {link.K_START: 0})[link.K_TYPE], link.LIST)
        self.assertEqual(recorder.seen[1][1:], (link.ERROR, link.E_NO_SESSION))
        self.assertEqual(recorder.types()[2:], [link.HELLO, link.LIST])

    def test_an_idle_session_is_opened_again_first(self):
        recorder = Recorder()
        sim = SimLink(uart_pedal(), deliver=recorder)
        sim.host.open_session(0)
        sim.run()
        sim.request(link.LIST, {link.K_START: 0})
        self.assertEqual(recorder.types(), [link.HELLO, link.LIST])  # in use: no new HELLO
        sim.now += IDLE_MS + 1
        sim.request(link.LIST, {link.K_START: 0})
        self.assertEqual(recorder.types(), [link.HELLO, link.LIST, link.HELLO, link.LIST])

    def test_bye_ends_the_session_on_both_ends(self):
        pedal = uart_pedal()
        sim = SimLink(pedal)
        sim.host.open_session(0)
        self.assertEqual(sim.run()["board"], "memory")
        sim.host.bye(sim.now)
        sim.run()
        self.assertIsNone(sim.host.info)
        self.assertFalse(pedal.active)


class ListTest(unittest.TestCase):
    def setUp(self):
        self.store = MemoryStore()
        for model_id in range(1, 13):
            self.store.add_model(model_id, blob(100 + model_id, model_id))

    def test_every_model_in_pages(self):
        sim = SimLink(uart_pedal(self.store, max_frame=400))
        sim.host.list_models(0)
        items, active = sim.run()
        self.assertEqual([item[0] for item in items], list(range(1, 13)))
        self.assertEqual(active, 1)

    def test_pages_shrink_when_big_ones_are_lost(self):
        # a line that loses every answer over 200 bytes: a full page never arrives
        recorder = Recorder(lambda reply, answer: len(answer) > 200)
        sim = SimLink(uart_pedal(self.store), deliver=recorder)
        sim.host.list_models(0)
        items, active = sim.run()
        self.assertEqual([item[0] for item in items], list(range(1, 13)))
        lists = [seq for seq, kind, code in recorder.seen if kind == link.LIST]
        self.assertGreater(len(lists), LIST_RETRIES + 1)  # the big page, asked for again, then small ones

    def test_pages_of_one_that_are_lost_break_the_link(self):
        recorder = Recorder(lambda reply, answer: reply[link.K_TYPE] == link.LIST)
        sim = SimLink(uart_pedal(self.store), deliver=recorder, host=HostEnd(rto_ms=50, retries=1, max_reply=1200))
        sim.host.list_models(0)
        with self.assertRaises(LinkBroken):
            sim.run()
