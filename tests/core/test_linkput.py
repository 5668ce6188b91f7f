"""A PUT's fields are checked before a transfer opens, and DEFLATE frames are inflated
only up to what the transfer may still hold: every bad request gets an ERROR reply.
Runs on CPython and MicroPython."""

import unittest

from tonecore import link

from memorypedal import MemoryStore, hello, pedal_reply, uart_pedal

SHA = bytes(range(32))
GOOD = {link.K_ID: 7, link.K_SIZE: 100, link.K_SHA: SHA, link.K_NAME: "Clean", link.K_PLATFORM: "nam",
        link.K_FILENAME: "clean.nam", link.K_TONE: 3, link.K_CLASS: "nano", link.K_UPDATED: "2026-01-02T03:04:05Z"}


def put(pedal, seq, change=None, drop=None):
    """The pedal's reply to GOOD with `change`d fields and without `drop`."""
    fields = dict(GOOD)
    fields.update(change or {})
    if drop is not None:
        del fields[drop]
    return pedal_reply(pedal, seq, link.PUT, fields)


class PutFieldsTest(unittest.TestCase):
    def setUp(self):
        self.store = MemoryStore()
        self.pedal = uart_pedal(self.store)
        hello(self.pedal, 1)

    def refused(self, code, change=None, drop=None):
        seq = self.seq = getattr(self, "seq", 1) + 1
        reply = put(self.pedal, seq, change, drop)
        self.assertEqual((reply[link.K_TYPE], reply.get(link.K_CODE)), (link.ERROR, code), (change, drop, reply))
        self.assertIsNone(self.pedal.transfer)
        self.assertEqual(self.store.parts, {})
        return reply[link.K_MESSAGE]

    def test_a_good_put_opens_the_transfer_with_its_fields(self):
        reply = put(self.pedal, 2)
        self.assertEqual((reply[link.K_TYPE], reply[link.K_OFFSET]), (link.PUT, 0))
        meta = self.store.parts[7].meta
        self.assertEqual((meta["name"], meta["filename"], meta["platform"], meta["size_class"], meta["tone_id"]),
                         ("Clean", "clean.nam", "nam", "nano", 3))
        reply = put(self.pedal, 3, {link.K_ID: 8}, drop=link.K_NAME)  # name and platform may be left out
        self.assertEqual(reply[link.K_TYPE], link.PUT)
        self.assertEqual(self.store.parts[8].meta["name"], "clean.nam")
        long_file = "f" * 124 + ".nam"  # a file name may be longer than a name
        self.assertEqual(put(self.pedal, 4, {link.K_ID: 9, link.K_FILENAME: long_file}, drop=link.K_NAME)[link.K_TYPE],
                         link.PUT)
        self.assertEqual(self.store.parts[9].meta["name"], "f" * 64)


    def test_fields_of_the_wrong_type_or_length_are_a_bad_request(self):
        bad = link.E_BAD_REQUEST
        for change in ({link.K_NAME: ["Clean"]}, {link.K_NAME: ""}, {link.K_NAME: "n" * 65}, {link.K_NAME: "a\nb"},
                       {link.K_FILENAME: 12}, {link.K_FILENAME: "dir/clean.nam"}, {link.K_FILENAME: "x\x00.nam"},
                       {link.K_FILENAME: "f" * 125 + ".nam"},
                       {link.K_PLATFORM: 1}, {link.K_CLASS: "huge"}, {link.K_CLASS: 2}, {link.K_TONE: "3"},
                       {link.K_UPDATED: b"2026"}, {link.K_ID: 0}, {link.K_ID: -1}, {link.K_ID: 1 << 31},
                       {link.K_ID: "7"}, {link.K_SIZE: 0}, {link.K_SIZE: 1 << 32}, {link.K_SIZE: True},
                       {link.K_SHA: SHA[:31]}, {link.K_SHA: "00" * 32}):
            self.refused(bad, change)
        for field in (link.K_ID, link.K_SIZE, link.K_SHA, link.K_FILENAME):
            self.refused(bad, drop=field)
        self.assertIn("field 23", self.refused(bad, {link.K_NAME: ["Clean"]}))

    def test_a_file_of_no_model_kind_is_a_format_refusal(self):
        self.assertIn("notes.txt is not a model file", self.refused(link.E_FORMAT, {link.K_FILENAME: "notes.txt"}))
        self.assertIn("'banana' is not a platform", self.refused(link.E_FORMAT, {link.K_PLATFORM: "banana"}))
        self.assertIn("a .wav file is an impulse response",
                      self.refused(link.E_FORMAT, {link.K_FILENAME: "cab.wav"}))  # as platform "nam"

    def test_the_pedal_keeps_answering_after_bad_puts(self):
        self.refused(link.E_BAD_REQUEST, {link.K_NAME: {1: 2}})
        self.assertEqual(put(self.pedal, 20)[link.K_TYPE], link.PUT)


class InflateBoundTest(unittest.TestCase):
    def test_a_frame_that_inflates_past_what_is_left_is_refused_never_inflated_whole(self):
        room = []

        def inflate(data, out):  # a deflate "bomb": it would give 60000 bytes; it fills `out`
            room.append(len(out))
            out[:] = bytes(len(out))
            return len(out)

        store = MemoryStore()
        pedal = uart_pedal(store, inflate=inflate)
        hello(pedal, 1)
        self.assertEqual(put(pedal, 2)[link.K_TYPE], link.PUT)  # 100 bytes announced
        pedal.receive(bytes(link.data_frame(3, 0, b"\x01" * 40)), 0)
        pedal.receive(bytes(link.data_frame(4, 40, b"bomb", link.DEFLATE)), 0)
        self.assertEqual(room, [61])  # what is left of the file, and one more byte to tell
        self.assertIsNone(pedal.transfer)  # closed; the host hears at its next PUT
        reply = put(pedal, 5)
        self.assertEqual((reply[link.K_TYPE], reply[link.K_CODE]), (link.ERROR, link.E_BAD_REQUEST))
        self.assertIn("inflates past 60 bytes", reply[link.K_MESSAGE])
        self.assertEqual(store.installed, {})
        self.assertEqual(put(pedal, 6)[link.K_OFFSET], 40)  # said once; the good bytes resume

    def test_frames_inflate_into_one_buffer_of_a_data_frame(self):
        buffers = []

        def inflate(data, out):
            buffers.append(out)
            out[:10] = b"\x02" * 10
            return 10

        pedal = uart_pedal(MemoryStore(), inflate=inflate)
        self.assertTrue(hello(pedal, 1)[link.K_DEFLATE])
        held = pedal.inflated
        put(pedal, 2, {link.K_SIZE: 1 << 20})
        pedal.receive(bytes(link.data_frame(3, 0, b"z", link.DEFLATE)), 0)
        pedal.receive(bytes(link.data_frame(4, 10, b"z", link.DEFLATE)), 0)
        self.assertEqual([len(out) for out in buffers], [pedal.max_frame + 1] * 2)
        self.assertEqual(pedal.transfer[2], 20)
        self.assertIs(pedal.inflated, held)
        pedal.end_session()
        self.assertIsNone(pedal.inflated)  # given back with the session
