"""Streaming sanity checks for model files, fed the same chunks as the hash.

The API publishes no checksum, so besides length we check that the bytes are the kind
of file they claim to be: a JSON model (.nam, AIDA-X, Proteus, .json) must be one JSON
object (first byte '{', last '}'), and an impulse response (.wav) a RIFF/WAVE file whose
RIFF size matches the length.  Only a small head and tail are kept: memory does not
grow with file size.
"""

import struct

from .errors import IntegrityError

HEAD_BYTES = 64
TAIL_BYTES = 16
_WHITESPACE = b" \t\r\n"
KIND_BY_EXTENSION = {".nam": "json", ".json": "json", ".aidax": "json", ".wav": "wav"}


def kind_of(filename):
    """'json', 'wav' or None (unknown: no format check) for a file name."""
    name = (filename or "").lower()
    dot = name.rfind(".")
    if dot < 0:
        return None
    return KIND_BY_EXTENSION.get(name[dot:])


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
        """Raise IntegrityError unless the file looks complete and of its kind."""
        if total == 0:
            raise IntegrityError("%s is empty" % self.filename)
        if self.kind == "json":
            head = self.head.lstrip(_WHITESPACE)
            tail = self.tail.rstrip(_WHITESPACE)
            if not head.startswith(b"{") or not tail.endswith(b"}"):
                raise IntegrityError("%s is not a complete JSON model file" % self.filename)
        elif self.kind == "wav":
            head = self.head
            if len(head) < 16 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise IntegrityError("%s is not a RIFF/WAVE file" % self.filename)
            riff_size = struct.unpack("<I", head[4:8])[0]
            if riff_size + 8 != total:
                raise IntegrityError(
                    "%s is truncated or padded: RIFF says %d bytes, got %d" % (self.filename, riff_size + 8, total)
                )


def runnable(formats, platform, size):
    """True when a board with `formats` ({platform: sizes or '*'}) can run a model of
    that platform and size class (the pedal's Wi-Fi sync and the host's `pedal sync`)."""
    sizes = formats.get(platform)
    if sizes is None:
        return False
    return sizes == "*" or size in sizes
