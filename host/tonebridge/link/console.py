"""What answers on the pedal's console before the link starts, sans-IO: the tonebridge
link service, or a MicroPython REPL (friendly or raw), which then starts the service.

    start = ServiceStart(now_ms)            # queues the probe
    while not start.done():
        start.written(port.write(start.to_write()))
        start.receive(port.read(), now_ms)
        start.tick(now_ms)
    start.result()   # "service", "started" (it was at the REPL), None (no answer); or raises

The console is shared with MicroPython's tools (docs/protocol.md §1): after a Ctrl-C, or
any mpremote command, the pedal sits at the REPL, where a link frame's bytes would be
keystrokes (Ctrl-D, Ctrl-E, Enter...).  So before any frame the host sends the probe,
tonecore.linkconsole.PROBE ("\\x00\\r\\x01"), which both can take:

* the link service answers PROBE_ANSWER: go on with the HELLO;
* a REPL, friendly or raw, answers with the raw REPL's banner (for it the bytes are
  Enter, then Ctrl-A): run START_CODE there, as mpremote runs code (the code, Ctrl-D,
  "OK"), which starts the pedal again (pedal.serial.resume); probe until the service
  answers.  The code ending instead (its 0x04 marks) means it failed: no `pedal`
  package is `FirmwareMissing`, the rest a LinkBroken with the error's last line;
* nothing within PROBE_TRIES x PROBE_MS: a firmware older than the probe, or a pedal too
  busy to answer: the caller sends its HELLO as before (and gives up after its retries).
"""

from tonecore.errors import LinkBroken, LinkError
from tonecore.linkconsole import PROBE, PROBE_ANSWER, RAW_BANNER

PROBE_MS = 1000  # a REPL answers at once; the service within a few ms unless it is busy
PROBE_TRIES = 2
OK_MS = 5000  # the raw REPL's "OK" after the code
START_MS = 30000  # the pedal starts (on a board after a soft reset: Wi-Fi, then the portal)
REPROBE_MS = 500  # while it starts
KEEP = 4096  # bytes of console output kept to look for the answers in
START_CODE = b"import pedal.serial\npedal.serial.resume()\n"
MARK = PROBE_ANSWER.strip(b"\r\n\x00")  # b"tonebridge link"
ANSWERED = MARK + b"\r\n"
NOT_HERE = "the tonebridge firmware is not on this board: run `tonebridge firmware deploy`"
TOO_OLD = "the tonebridge firmware on this board is older than this tonebridge: run `tonebridge firmware deploy`"


class FirmwareMissing(LinkError):
    """A MicroPython board without the tonebridge firmware (no `pedal` package)."""


class ServiceStart:
    """Probe the console; at a REPL, start the pedal through the raw REPL.

    `at_repl` turns True once a REPL answered (the caller may say so); `result()`
    is "service", "started" or None (nothing answered: try a HELLO)."""

    def __init__(self, now_ms):
        self.out = bytearray()
        self.seen = b""
        self.state = "probe"
        self.tries = 0
        self.at_repl = False
        self.value = None
        self.error = None
        self._probe(now_ms)

    # -- bytes out, bytes in, time ----------------------------------------------------

    def to_write(self):
        return bytes(self.out)

    def written(self, count):
        if count > 0:
            del self.out[:count]

    def receive(self, data, now_ms):
        if not data or self.state == "done":
            return
        self.seen = (self.seen + data)[-KEEP:]
        getattr(self, "_seen_" + self.state)(now_ms)

    def tick(self, now_ms):
        if self.state == "done" or now_ms < self.deadline:
            return
        if self.state == "probe":
            if self.tries < PROBE_TRIES:
                self._probe(now_ms)
            else:
                self._finish(None)  # nothing answered
        elif self.state == "ok":
            self._fail(LinkBroken("the pedal's MicroPython REPL did not take tonebridge's command"))
        elif self.state == "starting":
            if now_ms < self.start_deadline:
                self.out += PROBE
                self.deadline = now_ms + REPROBE_MS
            else:
                self._fail(LinkBroken("the tonebridge firmware did not start its USB service within %d s (its "
                                      "console: mpremote connect PORT repl)" % (START_MS // 1000)))
        elif self.state == "error":
            self._ended(self.seen)

    def done(self):
        """True once the outcome is known and everything queued is written."""
        return self.state == "done" and not self.out

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value

    # -- the states -------------------------------------------------------------------

    def _probe(self, now_ms):
        self.tries += 1
        self.out += PROBE
        self.deadline = now_ms + PROBE_MS

    def _seen_probe(self, now_ms):
        if ANSWERED in self.seen:
            self._finish("service")
        elif RAW_BANNER in self.seen:  # a REPL: friendly ("\r" is Enter, Ctrl-A the raw REPL) or raw
            self.at_repl = True
            self.state = "ok"
            self.seen = b""
            self.out += START_CODE + b"\x04"  # the raw REPL runs what came before Ctrl-D
            self.deadline = now_ms + OK_MS

    def _seen_ok(self, now_ms):
        at = self.seen.find(b"OK")
        if at >= 0:
            self.state = "starting"
            self.seen = self.seen[at + 2:]
            self.start_deadline = now_ms + START_MS
            self.deadline = now_ms  # probe now
            self._seen_starting(now_ms)

    def _seen_starting(self, now_ms):
        end = self.seen.find(b"\x04")
        if end >= 0:  # the code ended: output, 0x04, its error, 0x04
            self.state = "error"
            self.seen = self.seen[end + 1:]
            self.deadline = now_ms + 1000
            self._seen_error(now_ms)
        elif ANSWERED in self.seen:
            self._finish("started")

    def _seen_error(self, now_ms):
        end = self.seen.find(b"\x04")
        if end >= 0:
            self._ended(self.seen[:end])

    def _ended(self, error):
        """The start code ended (it never does while the pedal runs): why."""
        text = error.decode("utf-8", "replace")
        if "no module named 'pedal'" in text:
            failure = FirmwareMissing(NOT_HERE)
        elif "no module named 'pedal." in text or "no attribute 'resume'" in text:
            failure = FirmwareMissing(TOO_OLD)
        else:
            failure = LinkBroken("the tonebridge firmware stopped as it started: %s" % _last_line(text))
        self.out += b"\r\x02"  # leave the board at its friendly REPL, as mpremote does
        self._fail(failure)

    def _finish(self, value):
        self.state = "done"
        self.value = value

    def _fail(self, error):
        self.state = "done"
        self.error = error


def _last_line(text):
    """The last line of `text` with words in it, printable characters only."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "no error message"
    return "".join(c if c.isprintable() else " " for c in line)[:200]
