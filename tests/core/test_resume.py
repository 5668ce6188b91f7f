"""What every file arriving on a pedal or a host goes through, whatever brought it:
the resume decision (`resume_offset`: does a .part continue this transfer?), the
re-reading of a kept .part into the checks, and the checks themselves (`Verifier`:
length, SHA-256, format), alone and inside a DownloadPlan and client.download."""

import unittest

from fakes import MemorySink, signed_in
from tonecore.compat import hexlify, sha256
from tonecore.download import APPEND, DownloadPlan, Verifier, resume_offset
from tonecore.errors import IntegrityError
from tonecore.formats import FormatError
from tonecore.http import Response

# As in test_download.py; importing that module instead would load its tests too, more
# than the MicroPython runner's 128 KB heap holds beside these.
URL = "https://api.example/files/m.nam"


def model_bytes(size):
    """A JSON model document of exactly `size` bytes."""
    return b'{"version":"1","architecture":"A","config":{},"weights":[' + b"7" * (size - 60) + b']}\n'


def digest(data):
    h = sha256()
    h.update(data)
    return hexlify(h.digest())


class PartFile:
    """A .part read back through `readinto`, as an adapter's file would be: counts reads."""

    def __init__(self, data):
        self.data = data
        self.at = 0
        self.reads = 0

    def readinto(self, view):
        self.reads += 1
        count = min(len(view), len(self.data) - self.at)
        view[:count] = self.data[self.at:self.at + count]
        self.at += count
        return count


ID = {"id": 7, "updated_at": "2026-01-01"}


class ResumeOffsetTest(unittest.TestCase):
    def test_a_part_whose_sidecar_names_this_transfer_is_kept_whole(self):
        self.assertEqual(resume_offset({"id": 7, "updated_at": "2026-01-01", "etag": '"e"'}, ID, 500), 500)

    def test_anything_else_starts_over(self):
        self.assertEqual(resume_offset({"id": 7, "updated_at": "2025-12-31"}, ID, 500), 0)  # another version
        self.assertEqual(resume_offset({"id": 7}, ID, 500), 0)  # says less than it must
        self.assertEqual(resume_offset(None, ID, 500), 0)  # no sidecar
        self.assertEqual(resume_offset([7], ID, 500), 0)  # a damaged one
        self.assertEqual(resume_offset(ID, ID, None), 0)  # no .part
        self.assertEqual(resume_offset(ID, ID, 0), 0)

    def test_a_part_longer_than_the_announced_file_starts_over(self):
        self.assertEqual(resume_offset(ID, ID, 500, total=500), 500)
        self.assertEqual(resume_offset(ID, ID, 501, total=500), 0)


class VerifierTest(unittest.TestCase):
    def test_length_hash_and_format(self):
        data = model_bytes(3000)
        verifier = Verifier("m.nam")
        for at in range(0, 3000, 700):
            verifier.feed(data[at:at + 700])
        self.assertEqual(verifier.finish(3000, digest(data)), digest(data))

    def test_a_wrong_length_or_hash_is_an_integrity_error_not_a_format_error(self):
        data = model_bytes(1000)
        for size, sha in ((999, None), (None, digest(b"other"))):
            verifier = Verifier("m.nam")
            verifier.feed(data)
            with self.assertRaises(IntegrityError) as caught:
                verifier.finish(size, sha)
            self.assertFalse(isinstance(caught.exception, FormatError))

    def test_a_cut_model_is_a_format_error(self):
        data = model_bytes(1000)[:-20]
        verifier = Verifier("m.nam")
        verifier.feed(data)
        with self.assertRaises(FormatError):
            verifier.finish(len(data), digest(data))

    def test_resume_reads_the_part_back_into_the_checks(self):
        data = model_bytes(3000)
        part = PartFile(data[:1234])
        verifier = Verifier("m.nam")
        self.assertEqual(verifier.resume(ID, ID, 1234, part.readinto, bytearray(100)), 1234)
        self.assertEqual(part.reads, 13)  # through the small buffer, never the whole file at once
        verifier.feed(data[1234:])
        self.assertEqual(verifier.finish(3000, digest(data)), digest(data))

    def test_resume_keeps_only_what_could_be_read(self):
        part = PartFile(b"{" * 300)  # stat said 500: the file is shorter now
        verifier = Verifier("m.nam")
        self.assertEqual(verifier.resume(ID, ID, 500, part.readinto, bytearray(128)), 300)
        self.assertEqual(verifier.size, 300)

    def test_another_transfers_part_is_not_read(self):
        part = PartFile(b"{" * 500)
        verifier = Verifier("m.nam")
        self.assertEqual(verifier.resume({"id": 7, "updated_at": "old"}, ID, 500, part.readinto, bytearray(64)), 0)
        self.assertEqual((part.reads, verifier.size), (0, 0))


class PlanResumeTest(unittest.TestCase):
    def test_resume_continues_from_the_part_with_its_etag(self):
        data = model_bytes(3000)
        plan = DownloadPlan(URL, "m.nam")
        sidecar = {"id": 7, "updated_at": "2026-01-01", "etag": '"v1"'}
        self.assertEqual(plan.resume(sidecar, ID, 1000, PartFile(data[:1000]).readinto, bytearray(256)), 1000)
        headers = plan.request_headers()
        self.assertEqual((headers["range"], headers["if-range"]), ("bytes=1000-", '"v1"'))
        self.assertEqual(plan.begin(Response(206, {"content-range": "bytes 1000-2999/3000"}, None, URL)), APPEND)
        plan.feed(data[1000:])
        self.assertEqual(plan.finish(), digest(data))

    def test_resume_of_another_versions_part_starts_from_zero(self):
        plan = DownloadPlan(URL, "m.nam")
        sidecar = {"id": 7, "updated_at": "2025-01-01", "etag": '"old"'}
        self.assertEqual(plan.resume(sidecar, ID, 1000, PartFile(b"{" * 1000).readinto, bytearray(256)), 0)
        self.assertEqual((plan.offset, plan.etag), (0, None))
        self.assertNotIn("range", plan.request_headers())



class ClientResumeTest(unittest.TestCase):
    def setUp(self):
        self.clock, self.api, self.client, self.driver = signed_in()
        self.data = model_bytes(3000)
        self.api.files["/files/m.nam"] = self.data

    def test_a_resumed_part_asks_only_for_the_rest(self):
        part = PartFile(memoryview(self.data)[:2000])
        plan = DownloadPlan(URL, "m.nam")
        plan.resume({"url": URL}, {"url": URL}, 2000, part.readinto, bytearray(512))
        sink = MemorySink(memoryview(self.data)[:2000])
        ranges = []

        def recording(request):
            ranges.append(request.headers.get("range"))
            return self.api.handle(request)

        self.driver.handler = recording
        self.assertEqual(self.driver.run(self.client.download(plan, sink)), digest(self.data))
        self.assertEqual(sink.digest(), digest(self.data))
        self.assertEqual(ranges, ["bytes=2000-"])  # only the rest was asked for
