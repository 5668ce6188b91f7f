"""Client-side pacing: never send more than `limit` requests in any `window_ms`.

TONE3000 allows 100 requests per minute.  A sliding log of send times is exact for a
sliding-window server and conservative for a fixed-window one.  The log is a fixed
ring of `limit` ints, so memory does not grow.
"""

DEFAULT_LIMIT = 100
DEFAULT_WINDOW_MS = 60000


class RateLimiter:
    """Sliding-window request pacing on the caller's monotonic clock."""

    def __init__(self, limit=DEFAULT_LIMIT, window_ms=DEFAULT_WINDOW_MS, margin_ms=250):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.window_ms = window_ms + margin_ms
        self._sent = [None] * limit  # ring of send times, oldest at _next
        self._next = 0
        self.blocked_until_ms = None  # set by a 429's Retry-After

    def delay_ms(self, now_ms):
        """How long to wait before the next request may be sent (0: send now)."""
        wait = 0
        oldest = self._sent[self._next]
        if oldest is not None:
            wait = oldest + self.window_ms - now_ms
        if self.blocked_until_ms is not None:
            wait = max(wait, self.blocked_until_ms - now_ms)
        return wait if wait > 0 else 0

    def record(self, now_ms):
        """Note that a request is being sent now."""
        self._sent[self._next] = now_ms
        self._next = (self._next + 1) % self.limit

    def block_for(self, now_ms, delay_ms):
        """Hold every request for `delay_ms` (the server said Retry-After)."""
        until = now_ms + delay_ms
        if self.blocked_until_ms is None or until > self.blocked_until_ms:
            self.blocked_until_ms = until


def retry_after_ms(value, default_ms=1000, max_ms=600000):
    """Milliseconds from a Retry-After header in seconds; the HTTP-date form is not
    parseable without a wall clock, so it gets `default_ms`."""
    if value is None:
        return default_ms
    value = value.strip()
    if value.isdigit():
        return min(int(value) * 1000, max_ms)
    try:
        seconds = float(value)
    except ValueError:
        return default_ms
    if not 0 <= seconds <= max_ms:  # negative, NaN (compares false) or infinite: as if absent
        return default_ms
    return min(int(seconds * 1000), max_ms)
