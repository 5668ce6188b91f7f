"""The crash counter: starts that never ran cleanly, counted across resets, and safe mode.

    /crashes.json   {"count": starts since the last clean run, "last": "MemoryError in recover"}

`begin()` at the start of every boot reads the count and writes it back one higher
(atomically: tmp, rename), so a start that never finishes (an exception, a panic, a
watchdog) stays counted.  `clear()` sets it back to 0 once the start ran cleanly (main.py:
up CLEAN_RUN_MS with no sync running, or a sync that finished).  `crashed(exc)` records
why a start ended, for the next one to say.  A power-on is no crash (unplugging is how a
pedal is switched off): after one the count starts again from 0, as RTC memory would.

After SAFE_AFTER unclean starts in a row the pedal starts in safe mode (main.py): portal
and USB serial only, no sync at boot, no tidying of the flash; `safe_mode` says why.
"""

import json

from .library import write_json

FILE = "crashes.json"
SAFE_AFTER = 3  # unclean starts in a row before safe mode
CLEAN_RUN_MS = 60 * 1000  # up this long with no sync running: a clean start
REASON_MAX = 80  # characters of a recorded reason


def _read(path):
    """The record at `path`; {} when it is missing, damaged or absurd (read 128 bytes at most)."""
    try:
        with open(path) as f:
            data = json.loads(f.read(128))
    except (OSError, ValueError, MemoryError):
        return {}
    return data if isinstance(data, dict) else {}


def unclean_starts(root):
    """The count on flash under `root` (0 when there is none)."""
    count = _read(root.rstrip("/") + "/" + FILE).get("count")
    return count if type(count) is int and count > 0 else 0


class BootGuard:
    """One start's view of the crash counter.

    Attributes:
        stage: what the start is doing ("library", "recover", "serve", ...): the `last`
            reason names it when the start crashes.
        count: unclean starts before this one.
        last: why the last of them ended, when it was recorded.
        safe_mode: why this start is in safe mode, or None.
    """

    def __init__(self, root, safe_after=SAFE_AFTER):
        self.path = root.rstrip("/") + "/" + FILE
        self.safe_after = safe_after
        self.stage = "start"
        self.count = 0
        self.last = None
        self.safe_mode = None
        self.cleared = False

    def begin(self, power_on=False):
        """Count this start; returns the safe-mode reason, or None.

        Args:
            power_on: the board was powered up (not reset): earlier starts are forgiven.
        """
        record = _read(self.path)
        count, last = record.get("count"), record.get("last")
        self.count = count if type(count) is int and count > 0 and not power_on else 0
        self.last = last[:REASON_MAX] if isinstance(last, str) and self.count else None
        if self.count >= self.safe_after:
            if self.last:
                self.safe_mode = "the last %d starts crashed (%s)" % (self.count, self.last)
            else:
                self.safe_mode = "the last %d starts did not finish" % self.count
        self._write(self.count + 1, self.last)
        return self.safe_mode

    def crashed(self, exc):
        """Record why this start ends (`exc`) for the next one; never raises."""
        self.last = "%s in %s" % (type(exc).__name__, self.stage)
        self._write(self.count + 1, self.last)

    def clear(self):
        """This start ran cleanly: the count is 0 again.  True when it was not already."""
        if self.cleared:
            return False
        self.cleared = True
        self._write(0, None)
        return True

    def _write(self, count, last):
        try:
            write_json(self.path, {"count": count, "last": last})
        except Exception:  # noqa: BLE001 - a full or failing flash: the pedal runs on uncounted
            pass
