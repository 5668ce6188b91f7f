"""The text of a pedal's console, without the USB link's frames (for `tonebridge sim --log`).

The console carries log lines and, while a host holds a link session, the link's binary
frames (docs/protocol.md §1-2): each frame is COBS-encoded and ends with a 0x00 byte,
which a text line never holds; log lines are held by the pedal during a session.  So:

* every 0x00 ends a frame.  The frame began at the start of the bytes not judged yet
  or just after a newline in them (a frame may hold 0x0A bytes): the earliest such
  start from which the bytes decode as a good frame (COBS and CRC32, tonecore.frame)
  is where the text before it ends; the frame is dropped.  Bytes that make no good
  frame (a damaged one) are dropped from their first line that does not read as text
  (or from their last newline) on.
* a line that ends before any 0x00 is written at once if it reads as text (UTF-8, no
  control characters but tab).  One that does not may be the start of a frame whose
  0x00 is still to come: it is held, with the lines after it, until a 0x00 arrives
  (then the frame rule above judges them) or more than MAX_HELD bytes wait (no frame
  is that long: the held lines were noise, and their text lines go out).  `close()`
  gives the text lines still held when the console ends.

So a frame split across any number of reads is left out whole, and no text line is
lost; only a text line that follows binary noise (not a frame) waits.
"""

from tonecore.frame import Decoder

MAX_HELD = 64 * 1024  # bytes kept waiting for a 0x00: more than any frame (max_frame is a few KB)


def is_frame(data):
    """Whether `data` (without its 0x00 delimiter) is one good link frame."""
    return any(True for _ in Decoder(len(data) + 1).feed(bytes(data) + b"\x00"))


def reads_as_text(line):
    """Whether `line` (bytes, no newline) is a log line: UTF-8 without control characters."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c == "\t" or c == "\r" or (c >= " " and c != "\x7f") for c in text)


class ConsoleText:
    """Feed it the console's bytes; it returns the text lines among them (bytes, each
    ending with a newline), the frames left out."""

    def __init__(self):
        self._held = b""  # lines of the last read that did not read as text (each with its newline)
        self._partial = b""  # the bytes after the last newline (no 0x00 among them)

    def feed(self, data):
        """The text lines that `data` completes (b"" when none)."""
        buf = self._held + self._partial + bytes(data)
        out = []
        start = 0
        zero = buf.find(b"\x00")
        while zero >= 0:
            out.append(self._before_frame(buf[start:zero]))
            start = zero + 1
            zero = buf.find(b"\x00", start)
        if start == 0 and self._held:
            held = len(self._held)
            rest = buf[held:]
            if held + len(rest) <= MAX_HELD:
                self._held = self._held + rest[:rest.rfind(b"\n") + 1]  # still waiting for a 0x00
                self._partial = rest[rest.rfind(b"\n") + 1:]
                return b"".join(out)
            out.append(_text_lines(self._held))  # no frame is that long: noise
        else:
            rest = buf[start:]
        self._held = b""
        end = rest.rfind(b"\n") + 1
        for line in rest[:end].split(b"\n")[:-1]:
            if self._held or not reads_as_text(line):
                self._held += line + b"\n"  # maybe a frame's start: wait for its 0x00
            else:
                out.append(line + b"\n")
        self._partial = rest[end:]
        if len(self._partial) > MAX_HELD:
            self._partial = b""  # no line or frame is that long
        return b"".join(out)

    def close(self):
        """The text lines still held when the console ends (b"" when none)."""
        text = _text_lines(self._held)
        self._held = self._partial = b""
        return text

    @staticmethod
    def _before_frame(segment):
        """The text lines of `segment`, the bytes before a 0x00: up to where a frame starts."""
        starts = [0] + [i + 1 for i in range(len(segment)) if segment[i] == 0x0A]
        for at in starts:
            if at < len(segment) and is_frame(segment[at:]):
                text = segment[:at]
                break
        else:  # a damaged frame: it starts with the first line that is not text, at the latest
            kept = []  # after the last newline
            for line in segment.split(b"\n")[:-1]:
                if not reads_as_text(line):
                    break
                kept.append(line + b"\n")
            return b"".join(kept)
        return _text_lines(text)


def _text_lines(lines):
    """The lines of `lines` (bytes of whole lines) that read as text, each with its newline."""
    return b"".join(line + b"\n" for line in lines.split(b"\n")[:-1] if reads_as_text(line))
