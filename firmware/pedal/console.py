"""The serial console log: one line per event, with seconds since boot.

Never pass tokens, API keys or signed URLs here.  Control characters are printed as
spaces (server text must not drive the terminal).  A console nobody reads must not
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


def _plain(text):
    """`text` without control characters: a server's words (a model's name, an error
    message) must not send escape sequences to the serial terminal."""
    for c in text:
        if c < " " or "\x7f" <= c < "\xa0":
            return "".join(" " if c < " " or "\x7f" <= c < "\xa0" else c for c in text)
    return text


def log(message):
    line = "[%8.3f] %s" % (time.ticks_diff(time.ticks_ms(), _BOOT) / 1000, _plain(message))
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
