"""The download plan on its own, and client.download against the in-memory API.
(test_resume.py: the checks and the resume decision every arriving file gets.)"""

import unittest

from fakes import MemorySink, signed_in
from tonecore.compat import hexlify, sha256
from tonecore.download import AGAIN, APPEND, COMPLETE, RESTART, DownloadPlan, parse_content_range
from tonecore.errors import DownloadError, Forbidden, IntegrityError, NotFound, ProtocolError, TransportError
from tonecore.http import Response

URL = "https://api.example/files/m.nam"


def model_bytes(size):
    """A NAM model document of exactly `size` bytes, its weights one long number (built
    in place: one allocation)."""
    head, tail = b'{"version":"1","architecture":"A","config":{},"weights":[', b"]}\n"
    data = bytearray(size)
    data[:len(head)] = head
    for at in range(len(head), size - len(tail)):
        data[at] = 0x37
    data[size - len(tail):] = tail
    return data


def digest(data):
    h = sha256()
    h.update(data)
    return hexlify(h.digest())


def resp(status, headers):
    return Response(status, headers, None, URL)


class ContentRangeTest(unittest.TestCase):
    def test_forms(self):
        self.assertEqual(parse_content_range("bytes 0-99/1000"), (0, 99, 1000))
        self.assertEqual(parse_content_range("bytes 5-9/*"), (5, 9, None))
        self.assertEqual(parse_content_range("bytes */1000"), (None, None, 1000))

    def test_malformed(self):
        for bad in (None, "", "items 0-1/2", "bytes 9-5/10", "bytes 0-10/10", "bytes a-b/c", "bytes 0-1"):
            with self.assertRaises(ProtocolError):
                parse_content_range(bad)


class PlanTest(unittest.TestCase):
    def test_fresh_request_has_no_range(self):
        self.assertNotIn("range", DownloadPlan(URL).request_headers())

    def test_resume_request_has_range_and_if_range(self):
        headers = DownloadPlan(URL, offset=100, etag='"abc"').request_headers()
        self.assertEqual((headers["range"], headers["if-range"]), ("bytes=100-", '"abc"'))
        self.assertNotIn("if-range", DownloadPlan(URL, offset=1, etag='W/"weak"').request_headers())

    def test_matching_206_appends(self):
        plan = DownloadPlan(URL, offset=100)
        self.assertEqual(plan.begin(resp(206, {"content-range": "bytes 100-199/200", "content-length": "100"})), APPEND)
        self.assertEqual(plan.total, 200)

    def test_206_for_another_range_is_refused_and_starts_over(self):
        plan = DownloadPlan(URL, offset=100)
        with self.assertRaises(ProtocolError):
            plan.begin(resp(206, {"content-range": "bytes 0-199/200"}))
        self.assertEqual(plan.offset, 0)
        self.assertNotIn("range", plan.request_headers())

    def test_206_without_content_range_is_refused(self):
        with self.assertRaises(ProtocolError):
            DownloadPlan(URL, offset=5).begin(resp(206, {}))

    def test_206_length_must_match_range(self):
        with self.assertRaises(ProtocolError):
            DownloadPlan(URL, offset=100).begin(resp(206, {"content-range": "bytes 100-199/200", "content-length": "50"}))

    def test_200_restarts_from_zero(self):
        plan = DownloadPlan(URL, offset=100)
        plan.absorb_prefix(b"x" * 100)
        self.assertEqual(plan.begin(resp(200, {"content-length": "200"})), RESTART)
        self.assertEqual((plan.offset, plan.total, plan.restarts), (0, 200, 1))

    def test_416_at_the_end_is_complete(self):
        plan = DownloadPlan(URL, offset=200)
        self.assertEqual(plan.begin(resp(416, {"content-range": "bytes */200"})), COMPLETE)
        plan2 = DownloadPlan(URL, offset=300)
        self.assertEqual(plan2.begin(resp(416, {"content-range": "bytes */200"})), AGAIN)
        self.assertEqual(plan2.offset, 0)

    def test_compressed_body_is_refused(self):
        with self.assertRaises(ProtocolError):
            DownloadPlan(URL).begin(resp(200, {"content-encoding": "gzip"}))

    def test_more_bytes_than_announced(self):
        plan = DownloadPlan(URL)
        plan.begin(resp(200, {"content-length": "10"}))
        plan.feed(b"x" * 8)
        with self.assertRaises(IntegrityError):
            plan.feed(b"x" * 3)

    def test_fewer_bytes_than_announced(self):
        plan = DownloadPlan(URL)
        plan.begin(resp(200, {"content-length": "10"}))
        plan.feed(b"x" * 8)
        with self.assertRaises(TransportError):
            plan.body_ended()
        with self.assertRaises(IntegrityError):
            plan.finish()

    def test_hash_covers_prefix_and_new_bytes(self):
        data = model_bytes(3000)
        plan = DownloadPlan(URL, offset=1000)
        plan.absorb_prefix(data[:1000])
        plan.begin(resp(206, {"content-range": "bytes 1000-2999/3000"}))
        plan.feed(data[1000:])
        plan.body_ended()
        self.assertEqual(plan.finish(), digest(data))

    def test_backoff_grows_and_resets_on_progress(self):
        plan = DownloadPlan(URL, max_failures=3)
        self.assertEqual([plan.failed("e") for _ in range(3)], [250, 500, 1000])
        plan.offset = 10  # progress
        self.assertEqual(plan.failed("e"), 250)

    def test_gives_up_without_progress(self):
        plan = DownloadPlan(URL, max_failures=2)
        plan.failed("e")
        plan.failed("e")
        with self.assertRaises(DownloadError) as ctx:
            plan.failed("boom")
        self.assertIn("boom", str(ctx.exception))


class ClientDownloadTest(unittest.TestCase):
    def setUp(self):
        self.clock, self.api, self.client, self.driver = signed_in()
        self.data = model_bytes(3000)  # small: the 128k MicroPython heap is fragmented after imports
        self.api.files["/files/m.nam"] = self.data

    def run_download(self, offset=0, sink=None):
        sink = sink or MemorySink()
        plan = DownloadPlan(URL, "m.nam", offset=offset)
        if offset:
            plan.absorb_prefix(memoryview(self.data)[:offset])
        sha = self.driver.run(self.client.download(plan, sink))
        return sha, sink, plan

    def test_plain_download(self):
        sha, sink, plan = self.run_download()
        self.assertEqual(sink.digest(), digest(self.data))
        self.assertEqual(sha, digest(self.data))

    def test_resumes_after_cuts(self):
        self.api.cuts = [1200, 1, 900, 0, 700]
        sha, sink, plan = self.run_download()
        self.assertEqual(sink.digest(), digest(self.data))
        self.assertEqual(sha, digest(self.data))
        ranges = [e for e in self.driver.events if e[0] == "send" and e[1] == "/files/m.nam"]
        self.assertEqual(len(ranges), 6)
        self.assertEqual(sink.truncations, 0)

    def test_resumes_from_a_previous_runs_part(self):
        sink = MemorySink(memoryview(self.data)[:2321])
        sha, sink, plan = self.run_download(offset=2321, sink=sink)
        self.assertEqual(sha, digest(self.data))
        self.assertEqual(sink.digest(), digest(self.data))

    def test_server_without_range_support_restarts(self):
        self.api.range_support = False
        self.api.cuts = [1500]
        sha, sink, plan = self.run_download()
        self.assertEqual(sink.digest(), digest(self.data))
        self.assertEqual(sink.truncations, 1)
        self.assertEqual(plan.restarts, 1)
        self.assertEqual(sha, digest(self.data))

    def test_server_ignoring_range_and_cutting_every_body_gives_up(self):
        # Without a high-water mark each restart looked like progress: an endless loop.
        self.api.range_support = False
        self.api.cuts = [1500] * 50
        with self.assertRaises(DownloadError) as ctx:
            self.run_download()
        self.assertIn("ignored the resume request", str(ctx.exception))
        sends = [e for e in self.driver.events if e[0] == "send" and e[1] == "/files/m.nam"]
        self.assertEqual(len(sends), 1 + 3)  # the first try, then MAX_RESTARTS restarts
        self.assertEqual(self.driver.slept, [250, 500, 1000])

    def test_no_range_server_with_cuts_that_move_on_still_finishes(self):
        self.api.range_support = False
        self.api.cuts = [600, 1200, 1800, 2400]
        sha, sink, plan = self.run_download()
        self.assertEqual(sha, digest(self.data))
        self.assertEqual(sink.digest(), digest(self.data))
        self.assertEqual((plan.restarts, plan.retries), (4, 4))

    def test_already_complete_part(self):
        sink = MemorySink(self.data)
        sha, sink, plan = self.run_download(offset=len(self.data), sink=sink)
        self.assertEqual(sha, digest(self.data))

    def test_truncated_file_on_server_fails_integrity(self):
        self.api.files["/files/m.nam"] = memoryview(self.data)[:-5]
        with self.assertRaises(IntegrityError):
            self.run_download()

    def test_endless_cuts_give_up(self):
        self.api.cuts = [0] * 20
        with self.assertRaises(DownloadError):
            self.run_download()
        self.assertEqual(sum(self.driver.slept), 250 + 500 + 1000 + 2000 + 4000 + 8000)

    def test_forbidden_and_missing_are_not_retried(self):
        from fakes import json_response

        self.api.queued = [json_response(403, {"message": "favorite the tone first"})]
        with self.assertRaises(Forbidden) as ctx:
            self.run_download()
        self.assertIn("favorite the tone first", str(ctx.exception))
        with self.assertRaises(NotFound):
            plan = DownloadPlan("https://api.example/files/none.nam")
            self.driver.run(self.client.download(plan, MemorySink()))
