"""A fixed-window rate limiter with the X-RateLimit-* headers.

Each key (an access token, or a client IP for unauthenticated requests) gets `limit`
requests per window of `window` seconds, the window starting at its first request.
Refused requests do not count.  Retry-After is the time left in the window, or, when a
`penalty` is configured, that many seconds after which the key starts a fresh window.
"""

import math
import time
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int
    retry_after: int

    def headers(self):
        """The X-RateLimit-* headers (and Retry-After when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class FixedWindowThrottle:
    """Per-key fixed windows.  `monotonic` and `wall` are clocks (for tests)."""

    def __init__(self, monotonic=time.monotonic, wall=time.time):
        self.monotonic = monotonic
        self.wall = wall
        self._windows = {}  # key -> [window end (monotonic), count]

    def reset(self):
        self._windows.clear()

    def check(self, key, limit, window, penalty=None):
        """Count one request for `key` and decide; see the module docstring."""
        now = self.monotonic()
        slot = self._windows.get(key)
        if slot is None or now >= slot[0]:
            slot = self._windows[key] = [now + window, 0]
        allowed = slot[1] < limit
        if allowed:
            slot[1] += 1
        elif penalty is not None:
            slot[0] = now + penalty
        left = max(0.0, slot[0] - now)
        return Decision(
            allowed=allowed,
            limit=limit,
            remaining=max(0, limit - slot[1]),
            reset_epoch=int(math.ceil(self.wall() + left)),
            retry_after=max(1, int(math.ceil(left))),
        )
