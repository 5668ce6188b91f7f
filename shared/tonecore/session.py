"""Tokens and the refresh policy.

Time is a monotonic millisecond count passed in by the caller (`now_ms`); it must not
wrap (the firmware extends `ticks_ms` into a 64-bit count).  Wall-clock time is only
used to persist an expiry across restarts, and is also passed in (`wall_s`).

Refresh policy:
  * refresh when less than max(60 s, 10 % of expires_in) of the token's life remains;
  * refresh on a 401, once; if the retried request is refused again, that is an error;
  * a failed refresh clears the tokens and means "sign in again" - never a loop;
  * refresh tokens rotate: the new pair is persisted before it is used;
  * one refresh in flight at a time, however many callers (see client.py).
"""

from .compat import is_int
from .errors import ProtocolError

MIN_REFRESH_MARGIN_MS = 60000


class Tokens:
    """An access/refresh token pair with its expiry on the caller's monotonic clock.

    Attributes:
        access_token, refresh_token: the secrets (never print them).
        lifetime_s: expires_in as the server gave it.
        expires_ms: monotonic time at which the access token expires.
    """

    def __init__(self, access_token, refresh_token, lifetime_s, expires_ms):
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.lifetime_s = lifetime_s
        self.expires_ms = expires_ms

    @classmethod
    def from_session(cls, data, now_ms):
        """Parse a Session object ({access_token, refresh_token, expires_in, token_type}).

        Raises:
            ProtocolError: a field is missing or of the wrong type.
        """
        if not isinstance(data, dict):
            raise ProtocolError("the session response is not a JSON object")
        access = data.get("access_token")
        refresh = data.get("refresh_token")
        expires_in = data.get("expires_in")
        if not isinstance(access, str) or not access:
            raise ProtocolError("the session response has no access_token")
        if not isinstance(refresh, str) or not refresh:
            raise ProtocolError("the session response has no refresh_token")
        if isinstance(expires_in, float):
            expires_in = int(expires_in)
        if not is_int(expires_in) or expires_in < 0:
            raise ProtocolError("the session response has no valid expires_in")
        token_type = data.get("token_type", "bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ProtocolError("unsupported token_type %r" % (token_type,))
        return cls(access, refresh, expires_in, now_ms + expires_in * 1000)

    def remaining_ms(self, now_ms):
        return self.expires_ms - now_ms

    def refresh_margin_ms(self):
        """max(60 s, 10 % of the token's lifetime)."""
        return max(MIN_REFRESH_MARGIN_MS, self.lifetime_s * 100)

    def refresh_due(self, now_ms):
        """True when the token should be refreshed before the next request."""
        return self.remaining_ms(now_ms) < self.refresh_margin_ms()

    def authorization(self):
        return "Bearer " + self.access_token

    def to_record(self, now_ms, wall_s):
        """A JSON-able dict for storage; the expiry becomes wall-clock seconds."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": self.lifetime_s,
            "expires_at": int(wall_s + self.remaining_ms(now_ms) // 1000),
        }

    @classmethod
    def from_record(cls, record, now_ms, wall_s):
        """Tokens from `to_record` output.  An unknown wall clock (None) means 'refresh first'.

        Raises:
            ProtocolError: the record is damaged.
        """
        try:
            access = record["access_token"]
            refresh = record["refresh_token"]
            lifetime = int(record.get("expires_in", 3600))
            expires_at = record.get("expires_at")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProtocolError("the stored session is damaged")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise ProtocolError("the stored session is damaged")
        if wall_s is None or expires_at is None:
            remaining_ms = 0
        else:
            remaining_ms = max(0, int(expires_at - wall_s)) * 1000
        return cls(access, refresh, lifetime, now_ms + remaining_ms)

    def __repr__(self):
        return "<Tokens expires_ms=%d>" % self.expires_ms


class Session:
    """The current tokens plus the bookkeeping that keeps refreshes single and final.

    Attributes:
        flow: the SignInFlow that builds refresh requests.
        tokens: Tokens or None (signed out).
        generation: bumped every time new tokens are adopted; a 401 for a request made
            with an older generation just retries with the current tokens.
        refreshing: True while one caller's refresh is in flight; others wait.
    """

    def __init__(self, flow, tokens=None):
        self.flow = flow
        self.tokens = tokens
        self.generation = 0
        self.refreshing = False

    @property
    def signed_in(self):
        return self.tokens is not None

    def adopt(self, tokens):
        """Start using `tokens` (after they were persisted)."""
        self.tokens = tokens
        self.generation += 1

    def clear(self):
        self.tokens = None
        self.generation += 1
