"""The TONE3000 tokens on flash: one JSON file, replaced atomically, never printed."""

import os
import time

from tonecore.errors import ProtocolError
from tonecore.session import Tokens

from .library import read_json, write_json

WALL_CLOCK_SET = 1700000000  # a clock before Nov 2023 was never set (no NTP yet)


def wall_clock():
    """Unix seconds, or None when the pedal's clock was never set."""
    now = time.time()
    return now if now > WALL_CLOCK_SET else None


class TokenFile:
    def __init__(self, root):
        self.path = root.rstrip("/") + "/session.json"

    def load(self, now_ms):
        """The stored Tokens, or None.  Without a set clock they are due for refresh."""
        record = read_json(self.path, None)
        if record is None:
            return None
        try:
            return Tokens.from_record(record, now_ms, wall_clock())
        except ProtocolError:
            return None

    def save(self, tokens, now_ms):
        if tokens is None:
            try:
                os.remove(self.path)
            except OSError:
                pass
            return
        wall = wall_clock()
        record = tokens.to_record(now_ms, wall or 0)
        if wall is None:
            record["expires_at"] = None
        write_json(self.path, record)
