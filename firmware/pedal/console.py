"""The serial console log: one line per event, with seconds since boot.

Never pass tokens, API keys or signed URLs here.  A console nobody reads must not
stall the pedal: a failed write is dropped.
"""

import time

_BOOT = time.ticks_ms()


def log(message):
    try:
        print("[%8.3f] %s" % (time.ticks_diff(time.ticks_ms(), _BOOT) / 1000, message))
    except OSError:
        pass
