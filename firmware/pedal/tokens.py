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
    """session.json: the tokens, and the flow (and app key) that made them, which
    decides how they are refreshed.  A file without "flow" is the seed's OTP flow."""

    def __init__(self, root):
        self.path = root.rstrip("/") + "/session.json"
        self.flow = None  # of the session loaded
        self.client_id = None

    def load(self, now_ms):
        """The stored Tokens, or None.  Without a set clock they are due for refresh."""
        record = read_json(self.path, None)
        if record is None:
            return None
        if isinstance(record.get("flow"), str):
            self.flow = record["flow"]
        if isinstance(record.get("client_id"), str):
            self.client_id = record["client_id"]
        try:
            return Tokens.from_record(record, now_ms, wall_clock())
        except ProtocolError:
            return None

    def save(self, tokens, now_ms, flow=None):
        """Store `tokens` (None: remove them), made and refreshed by `flow`."""
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
        if flow is not None:
            record["flow"] = flow.name
            if getattr(flow, "client_id", None):
                record["client_id"] = flow.client_id
        write_json(self.path, record)
