"""The resumable, verified download plan (sans-IO), and the checks every arriving file gets.

The adapter owns the file; the plan owns every decision:

    plan = DownloadPlan(url, "clean.nam")
    a .part is there  -> plan.resume(sidecar, identity, part_size, readinto, buf)
                         keeps it (its bytes fed to the checks) when the sidecar says it is
                         this download, else 0: the adapter empties it and writes a new sidecar
    request headers   -> plan.request_headers()       Range: bytes=N- (+ If-Range)
    response arrives  -> plan.begin(response)         APPEND / RESTART / COMPLETE / AGAIN
    each body chunk   -> write it, then plan.feed(chunk)
    body ended        -> plan.body_ended()            raises if shorter than announced
    connection broke  -> plan.failed(error)           backoff in ms, or DownloadError
    all there         -> plan.finish()                length + format checked, SHA-256 hex

Rules: a 206 is accepted only if its Content-Range starts at our offset; a 200 means the
server ignored the range, so start again from 0; Content-Length is checked when present;
the SHA-256 covers every byte in file order; the caller renames `<name>.part` into place
only after `finish()` returned.

`Verifier` (length, SHA-256, format) and `resume_offset` (does a .part continue this
transfer?) are the plan's, and also what the pedal's USB push uses: a file that arrives
by any route is resumed and verified by this one code.
"""

from .compat import hexlify, sha256
from .errors import DownloadError, IntegrityError, ProtocolError, TransportError
from .formats import FormatCheck

APPEND = "append"  # keep the .part and append the body
RESTART = "restart"  # truncate the .part to 0, then write the body
COMPLETE = "complete"  # nothing more to fetch (416 at exactly our offset)
AGAIN = "again"  # discard this response, request again from 0

MAX_FAILURES = 6  # consecutive failed attempts without any progress
MAX_RESTARTS = 3  # 200s (Range ignored) that again fell short of the furthest offset
BACKOFF_START_MS = 250
BACKOFF_MAX_MS = 8000


def parse_content_range(value):
    """(first, last, total) from 'bytes first-last/total'; total None for '*'.
    (None, None, total) for 'bytes */total'.

    Raises:
        ProtocolError: malformed header.
    """
    text = (value or "").strip()
    if not text.startswith("bytes "):
        raise ProtocolError("bad Content-Range %r" % value)
    spec = text[6:].strip()
    if "/" not in spec:
        raise ProtocolError("bad Content-Range %r" % value)
    span, total = spec.split("/", 1)
    if total == "*":
        total = None
    elif total.isdigit():
        total = int(total)
    else:
        raise ProtocolError("bad Content-Range %r" % value)
    if span == "*":
        return None, None, total
    if "-" not in span:
        raise ProtocolError("bad Content-Range %r" % value)
    first, last = span.split("-", 1)
    if not first.isdigit() or not last.isdigit() or int(last) < int(first):
        raise ProtocolError("bad Content-Range %r" % value)
    first = int(first)
    last = int(last)
    if total is not None and last >= total:
        raise ProtocolError("bad Content-Range %r" % value)
    return first, last, total


def resume_offset(sidecar, identity, part_size, total=None):
    """How many bytes of an existing .part continue this transfer: all of them when its
    sidecar records this very transfer and it is no longer than `total`, else 0.

    Args:
        sidecar: the dict saved beside the .part (None: missing or unreadable).
        identity: {key: value} naming this transfer; every value must be in the sidecar.
        part_size: bytes in the .part (None or 0: there is none).
        total: the file's length when known in advance (a USB push), else None.
    """
    if not isinstance(sidecar, dict) or not part_size:
        return 0
    if total is not None and part_size > total:
        return 0
    for key in identity:
        if sidecar.get(key) != identity[key]:
            return 0
    return part_size


class Verifier:
    """Length, SHA-256 and format of one file, fed its bytes in file order.

    The format check is never skipped: a file name of no known extension, or a platform
    its extension cannot hold, fails at `finish` (tonecore.formats.check_kind says why).
    Memory does not grow with the file: a running hash and FormatCheck's small state.

    Args:
        filename: the file's name; its extension says what the bytes must be.
        platform: the platform it is for (tonecore.records.PLATFORMS), or None: any
            that its extension holds.
    """

    def __init__(self, filename, platform=None):
        self.filename = filename
        self.size = 0
        self._hash = sha256()
        self._check = FormatCheck(filename, platform)

    def feed(self, data):
        self._hash.update(data)
        self._check.feed(data)
        self.size += len(data)

    def reset(self):
        """Forget every byte fed (the transfer starts over from 0)."""
        self.size = 0
        self._hash = sha256()
        self._check.reset()

    def resume(self, sidecar, identity, part_size, readinto, buf, total=None):
        """Take over an existing .part when `resume_offset` says it continues this
        transfer: its bytes are read back (`readinto(view)` from the file's start, into
        `buf`) and fed, so the checks cover the whole file.

        Returns:
            the bytes kept (fewer than `part_size` when the file turned out shorter): the
            adapter writes on from there.  0: the adapter empties the .part and starts over.
        """
        left = kept = resume_offset(sidecar, identity, part_size, total)
        view = memoryview(buf)
        room = len(buf)
        while left:
            count = readinto(view[:left if left < room else room])
            if not count:
                break
            self.feed(view[:count])
            left -= count
        return kept - left

    def finish(self, size=None, sha=None):
        """Check the file: `size` bytes and SHA-256 `sha` (hex) when given, then its format.

        Returns:
            the SHA-256 of the bytes fed, lower-case hex.
        Raises:
            IntegrityError: another length or hash.
            FormatError (an IntegrityError): not a complete file of its kind.
        """
        if size is not None and self.size != size:
            raise IntegrityError("%s: got %d bytes, expected %d" % (self.filename, self.size, size))
        digest = hexlify(self._hash.digest())
        if sha is not None and digest != sha:
            raise IntegrityError("%s: the SHA-256 of the %d bytes received differs from the one announced"
                                 % (self.filename, self.size))
        self._check.verify(self.size)
        return digest


def _content_length(response):
    value = response.header("content-length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise ProtocolError("bad Content-Length %r" % value)
    return int(value)


class DownloadPlan:
    """State of one file download across attempts (see the module docstring).  `platform`
    (optional) is what the file is for: its structure is checked as that platform's
    (Verifier).

    Attributes:
        url: where the file is.
        offset: bytes of the file accounted for (hashed, counted) so far.
        sink_size: bytes the caller's sink holds; differs from offset only after the
            plan decided to start over, until the next body truncates the sink.
        total: the file's full length once known, else None.
        etag: the validator sent back as If-Range on resume.
    """

    APPEND = APPEND  # what begin() may answer, also here for a caller holding only a plan
    RESTART = RESTART
    COMPLETE = COMPLETE
    AGAIN = AGAIN

    def __init__(self, url, filename=None, offset=0, etag=None, max_failures=MAX_FAILURES, max_restarts=MAX_RESTARTS,
                 platform=None):
        self.url = url
        self.filename = filename or url.split("?", 1)[0].rsplit("/", 1)[-1]
        self.offset = offset
        self.sink_size = offset
        self.etag = etag
        self.total = None
        self.max_failures = max_failures
        self.max_restarts = max_restarts
        self.failures = 0  # failed attempts in a row without progress
        self.retries = 0  # failed attempts retried, in all
        self.restarts = 0
        self._end = None  # offset at which this response's body must end, when announced
        self._progress_mark = offset  # high-water mark: a restart must pass it to count
        self.verifier = Verifier(self.filename, platform)

    def resume(self, sidecar, identity, part_size, readinto, buf, total=None):
        """Continue from an existing .part if it is this download (see Verifier.resume);
        on a fresh plan.  The ETag saved in the sidecar comes back for If-Range.

        Returns:
            the offset to write on from; 0: empty the .part, write a new sidecar.
        """
        kept = self.verifier.resume(sidecar, identity, part_size, readinto, buf, total)
        self.offset = self.sink_size = self._progress_mark = kept
        self.etag = sidecar.get("etag") if kept else None
        return kept

    def absorb_prefix(self, chunk):
        """Feed bytes already in the .part to the checks (`offset` was given to the
        constructor; `resume` does both)."""
        self.verifier.feed(chunk)

    def request_headers(self):
        """Headers for the next attempt: Range from our offset, If-Range with the ETag."""
        headers = {"accept-encoding": "identity"}
        if self.offset > 0:
            headers["range"] = "bytes=%d-" % self.offset
            if self.etag and not self.etag.startswith("W/"):
                headers["if-range"] = self.etag
        return headers

    def begin(self, response):
        """Decide what to do with a response's body.

        Returns:
            APPEND, RESTART, COMPLETE or AGAIN.
        Raises:
            ProtocolError: a 206 for another range, a bad Content-Range/Length, or an
                encoded body; the caller treats it like a failed attempt.
        """
        encoding = (response.header("content-encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise ProtocolError("the server compressed the download (%s) despite Accept-Encoding: identity" % encoding)
        status = response.status
        length = _content_length(response)
        if status == 206:
            first, last, total = parse_content_range(response.header("content-range"))
            if first is None or first != self.offset:
                self._start_over()
                raise ProtocolError(
                    "asked for bytes from %d, got Content-Range %s" % (self.offset, response.header("content-range"))
                )
            if length is not None and length != last - first + 1:
                raise ProtocolError("Content-Length %d does not match Content-Range %s" % (length, response.header("content-range")))
            if self.total is not None and total is not None and total != self.total:
                self._start_over()
                raise ProtocolError("the file changed size on the server (%d, now %d bytes)" % (self.total, total))
            self.total = total
            self._end = last + 1
            self._remember_etag(response)
            return self._sink_action()
        if status == 200:
            if self.offset or self.sink_size:
                self.restarts += 1
            self._start_over()
            self.total = length
            self._end = length
            self._remember_etag(response)
            return self._sink_action()
        if status == 416:
            _, _, total = parse_content_range(response.header("content-range") or "bytes */*")
            if total is not None and total == self.offset and self.offset > 0:
                self.total = total
                return COMPLETE
            self._start_over()
            return AGAIN
        raise ProtocolError("unexpected HTTP %d for a download" % status)

    def feed(self, chunk):
        """Account for `chunk`, already written at the current offset.

        Raises:
            IntegrityError: more bytes than the server announced.
        """
        size = len(chunk)
        if self._end is not None and self.offset + size > self._end:
            raise IntegrityError(
                "%s: the server sent more than the %d bytes it announced" % (self.filename, self._end)
            )
        self.verifier.feed(chunk)
        self.offset += size
        self.sink_size = self.offset

    def body_ended(self):
        """The body stream ended normally.

        Raises:
            TransportError: fewer bytes than Content-Length/Content-Range announced
                (a cut connection; retrying resumes from `offset`).
        """
        if self._end is not None and self.offset < self._end:
            raise TransportError(
                "%s: the connection ended at byte %d of %d" % (self.filename, self.offset, self._end)
            )

    def failed(self, error):
        """Record a failed attempt.

        Returns:
            milliseconds to wait before trying again (from `offset`).
        Raises:
            DownloadError: too many attempts in a row without progress.  Progress means
                passing the furthest offset ever reached, so a server that ignores
                Range and cuts every body short is given up on, not retried forever.
        """
        if self.offset > self._progress_mark:
            self.failures = 0
            self._progress_mark = self.offset
        elif self.restarts >= self.max_restarts:
            raise DownloadError(
                "%s: the server ignored the resume request %d times and never sent the whole file (last error: %s)"
                % (self.filename, self.restarts, error)
            )
        self.failures += 1
        if self.failures > self.max_failures:
            raise DownloadError(
                "%s: gave up after %d attempts without progress (last error: %s)" % (self.filename, self.failures - 1, error)
            )
        self.retries += 1
        delay = BACKOFF_START_MS << (self.failures - 1)
        return delay if delay < BACKOFF_MAX_MS else BACKOFF_MAX_MS

    def finish(self):
        """Verify length (when announced) and format.

        Returns:
            the SHA-256 of the whole file, lower-case hex.
        Raises:
            IntegrityError: wrong length or not a valid file of its kind.
        """
        return self.verifier.finish(self.total)

    def _sink_action(self):
        """APPEND when the sink holds exactly our offset, else RESTART (offset is 0 then)."""
        if self.sink_size == self.offset:
            return APPEND
        self.sink_size = 0
        return RESTART

    def _start_over(self):
        self.offset = 0
        self.total = None
        self._end = None
        self.verifier.reset()

    def _remember_etag(self, response):
        etag = response.header("etag")
        if etag:
            self.etag = etag
