"""The console the link shares with the MicroPython REPL: what, besides frames, the
pedal's serial service looks for in the bytes it reads (docs/protocol.md §1).

    PROBE          b"\\x00\\r\\x01": the host's "who is there?", sent before any frame
    PROBE_ANSWER   the service's answer to it
    RAW_BANNER     what a MicroPython REPL answers to the same bytes (its raw REPL)
    ConsoleWatch   finds the probe, and mpremote's way into the raw REPL, in what is read

The probe is the same bytes for whoever answers.  A REPL, friendly or raw, takes
"\\r" then Ctrl-A as "enter (or restart) the raw REPL" and prints RAW_BANNER; the 0x00
in front does nothing there (readline ignores it; the raw REPL's Ctrl-A drops it).  The
link never sends "\\x00\\r\\x01": after a frame's 0x00 comes a COBS code byte and then
the frame's kind ('C', 'D', 'Z', 'A'), never 0x01, so the service can answer the probe
even in the middle of a session, and a host can tell the two apart before it sends a
frame into a REPL (where a frame's bytes are keystrokes: Ctrl-D, Ctrl-E...).

mpremote (and pyboard.py) enter the raw REPL with "\\r\\x03" (Ctrl-C, sometimes two),
then "\\r\\x01", and then wait for RAW_BANNER.  During a session 0x03 is link data, so
`ConsoleWatch` looks for the whole sequence: a 0x03, then nothing but 0x03 and CR, then
"\\r\\x01", as the last bytes read.  Link traffic ends a pause with such bytes about once
in 2^24 pauses mid-frame, so the service also waits for the line to stay quiet
(`REPL_QUIET_MS`) before it hands the console to the REPL.
"""

from .compat import const

PROBE = b"\x00\r\x01"
PROBE_ANSWER = b"\r\ntonebridge link\r\n\x00"  # the trailing 0x00 ends it for a frame decoder
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
REPL_QUIET_MS = const(50)  # after mpremote's sequence, this much silence before the hand-over

# what ConsoleWatch.scan finds (bits)
PROBED = const(1)  # the host's probe: answer it with PROBE_ANSWER
TO_REPL = const(2)  # mpremote's Ctrl-C ... "\r\x01", as the last bytes read

TAIL = const(16)  # bytes kept from earlier reads: a sequence may span reads (a byte at a time)


class ConsoleWatch:
    """Scans what the console reads for the probe and for mpremote's way in."""

    def __init__(self):
        self.tail = b"\xff" * TAIL  # the last TAIL bytes read (0xFF: none yet)

    def scan(self, data, count=None):
        """Look at `data[:count]`, the bytes just read after those before.

        Returns:
            0, or PROBED and/or TO_REPL (bits).
        """
        if count is None:
            count = len(data)
        found = 0
        if count and data[0] == 0x01 and self.tail[TAIL - 1] == 0x0D:  # "\r" | "\x01" across reads
            found |= self._classify(data, 0, count)
        at = data.find(b"\r\x01", 0, count) if count > 1 else -1
        while at >= 0:
            found |= self._classify(data, at + 1, count)
            at = data.find(b"\r\x01", at + 2, count)
        if count >= TAIL:
            self.tail = bytes(data[count - TAIL:count])
        elif count:
            self.tail = self.tail[count:] + bytes(data[:count])
        return found

    def _classify(self, data, index, count):
        """What the "\\r\\x01" whose 0x01 is data[index] ends: the probe (a 0x00 before
        the CR), mpremote's sequence (0x03, then only 0x03 and CR), or nothing."""
        at = index - 2
        byte = self._byte(data, at)
        if byte == 0:
            return PROBED
        ctrl_c = False
        while byte == 0x03 or byte == 0x0D:
            ctrl_c = ctrl_c or byte == 0x03
            at -= 1
            byte = self._byte(data, at)
        return TO_REPL if ctrl_c and index == count - 1 else 0

    def _byte(self, data, at):
        """data[at], reaching back into the earlier reads for at < 0 (None past them)."""
        if at >= 0:
            return data[at]
        if at < -TAIL:
            return None
        return self.tail[TAIL + at]


try:  # pragma: no cover - both have it; the pedal's dupterm streams derive from it
    from io import IOBase
except ImportError:  # pragma: no cover
    IOBase = object


class TypedInput(IOBase):
    """A dupterm stream that types `data` into the console's input once (a board's REPL
    reads its console first, then the dupterm streams), then puts back the stream that
    was there (`dupterm(previous, 0)`).  What is printed meanwhile is not its business."""

    def __init__(self, data, dupterm):
        self.data = bytes(data)
        self.dupterm = dupterm
        self.previous = dupterm(self, 0)

    def readinto(self, buf):
        if not self.data:
            return None  # "nothing now" (EAGAIN), never EOF: that would print a notice
        buf[0] = self.data[0]
        self.data = self.data[1:]
        if not self.data:
            self.dupterm(self.previous, 0)
        return 1

    def write(self, buf):
        return len(buf)

    def ioctl(self, op, arg):
        return arg & 1 if op == 3 and self.data else 0  # MP_STREAM_POLL: readable while it has bytes
