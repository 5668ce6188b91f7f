"""Model file formats: what a file name says a file is, what a board can hold, and
streaming sanity checks fed the same chunks as the hash.

The API publishes no checksum, so besides length we check that the bytes are the kind
of file they claim to be: a JSON model (.nam, AIDA-X, Proteus, .json) must be one JSON
object (first byte '{', last '}'), and an impulse response (.wav) a RIFF/WAVE file whose
RIFF size matches the length.  Only a small head and tail are kept: memory does not
grow with file size.

`EXTENSIONS` is the one table of file extensions: the check a file gets (here), the
platform a pushed file is taken for (`tonebridge pedal push`), and the extension an
installed model keeps on the pedal's flash.
"""

import struct

from .errors import IntegrityError

HEAD_BYTES = 64
TAIL_BYTES = 16
_WHITESPACE = b" \t\r\n"
MAX_EXTENSION = 8  # ".aidax" and friends; anything longer is not a plain extension

# extension -> (the platform a file of that kind is for, how its bytes are checked)
EXTENSIONS = {
    ".nam": ("nam", "json"),
    ".aidax": ("aida-x", "json"),
    ".json": ("aida-x", "json"),
    ".wav": ("ir", "wav"),
}


class FormatError(IntegrityError):
    """The bytes are not a complete file of the kind their name says (bad JSON, not RIFF)."""


def extension(filename):
    """The plain extension of a file name, lower case with its dot (".nam"), or "" when
    it has none: letters only, at most MAX_EXTENSION long, not a leading dot."""
    name = filename or ""
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    return ext if 1 < len(ext) <= MAX_EXTENSION and ext[1:].isalpha() else ""


def kind_of(filename):
    """'json', 'wav' or None (unknown: no format check) for a file name."""
    known = EXTENSIONS.get(extension(filename))
    return known[1] if known else None


def platform_of(filename):
    """The platform ("nam", "ir", "aida-x") a file name says, or None."""
    known = EXTENSIONS.get(extension(filename))
    return known[0] if known else None


class FormatCheck:
    """Collects head and tail bytes of a file and checks its format at the end."""

    def __init__(self, filename):
        self.filename = filename
        self.kind = kind_of(filename)
        self.reset()

    def reset(self):
        self.head = b""
        self.tail = b""

    def feed(self, data):
        if len(self.head) < HEAD_BYTES:
            self.head += bytes(data[: HEAD_BYTES - len(self.head)])
        if len(data) >= TAIL_BYTES:
            self.tail = bytes(data[len(data) - TAIL_BYTES :])
        else:
            self.tail = (self.tail + bytes(data))[-TAIL_BYTES:]

    def verify(self, total):
        """Raise FormatError unless the file looks complete and of its kind."""
        if total == 0:
            raise FormatError("%s is empty" % self.filename)
        if self.kind == "json":
            head = self.head.lstrip(_WHITESPACE)
            tail = self.tail.rstrip(_WHITESPACE)
            if not head.startswith(b"{") or not tail.endswith(b"}"):
                raise FormatError("%s is not a complete JSON model file" % self.filename)
        elif self.kind == "wav":
            head = self.head
            if len(head) < 16 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise FormatError("%s is not a RIFF/WAVE file" % self.filename)
            riff_size = struct.unpack("<I", head[4:8])[0]
            if riff_size + 8 != total:
                raise FormatError(
                    "%s is truncated or padded: RIFF says %d bytes, got %d" % (self.filename, riff_size + 8, total)
                )


def runnable(formats, platform, size):
    """True when a board with `formats` ({platform: sizes or '*'}) can run a model of
    that platform and size class (the pedal's Wi-Fi sync and the host's `pedal sync`)."""
    sizes = formats.get(platform)
    if sizes is None:
        return False
    return sizes == "*" or size in sizes


def fits(max_model_bytes, size):
    """True when a file of `size` bytes is within a board's MAX_MODEL_BYTES (None or 0:
    no limit)."""
    return not max_model_bytes or size <= max_model_bytes
