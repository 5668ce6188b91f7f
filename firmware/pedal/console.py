"""The serial console log: one line per event, with seconds since boot.

Never pass tokens, API keys or signed URLs here.  A console nobody reads must not
stall the pedal: a failed write is dropped.  While a USB link session owns the console
(`hold(True)`), lines wait and are printed when it ends.
"""

import time

_BOOT = time.ticks_ms()
HELD_LINES = 32  # kept while the console carries a USB link session (older ones are dropped)
_held = None  # a list while held


def _print(line):
    try:
        print(line)
    except OSError:
        pass


def log(message):
    line = "[%8.3f] %s" % (time.ticks_diff(time.ticks_ms(), _BOOT) / 1000, message)
    if _held is None:
        _print(line)
        return
    if len(_held) >= HELD_LINES:
        _held.pop(0)
    _held.append(line)


def hold(on):
    """While on, log lines wait (the console carries link frames); off prints them."""
    global _held
    if on:
        if _held is None:
            _held = []
        return
    lines, _held = _held, None
    for line in lines or ():
        _print(line)
