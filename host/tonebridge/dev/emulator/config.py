"""The emulator's switches: one dataclass, shared by the CLI, the in-process server and
`POST /_emulator/config` (which changes fields at run time).

Fields fixed at start-up (where to listen, the catalogue seed) cannot be changed at run
time; every other field can, and takes effect on the next request.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional

DEFAULT_SEED = 3000
THIRTY_DAYS = 30 * 24 * 3600


@dataclass
class EmulatorConfig:
    """Everything that can be switched.  Times are in seconds unless named `_ms`.

    Attributes:
        host, port: where the API origin listens (port 0: any free port).
        storage_port: where the storage origin (presigned downloads) listens.
        seed: seeds the catalogue (dates, counts, ids of users, file contents).
        bench_files: add demo's private tone 90 with ~2 MB, ~20 MB, ~4 MB and ~40 KB IRs (`make bench`).
        token_ttl: lifetime of access tokens (`expires_in`).
        refresh_ttl: lifetime of refresh tokens.
        rotate_refresh: a refresh returns a new refresh token and revokes the old one
            (and the old access token); off: the same refresh token stays valid.
        rate_limit: requests per `rate_window` per access token (per client IP when
            unauthenticated); 0 turns limiting off.
        rate_window: length of the fixed rate-limit window.
        retry_after: if set, a 429 says `Retry-After: <this>` and the client's window
            restarts after that long (a short penalty instead of the window's end).
        range_support: honour Range/If-Range on downloads.
        storage_redirect: downloads answer 302 to a presigned URL on the storage origin.
        presign_ttl: lifetime of those presigned URLs.
        chunked: download bodies without Content-Length (chunked transfer encoding).
        cut_after: cut every download body after this many bytes (None: never).
        cut_queue: one-shot cuts: the next download bodies are cut at these offsets,
            one offset per response (counted from that response's first body byte).
        delay_ms: latency added to every request (not to /_emulator).
        fail_5xx: the next N requests to the API or storage origin get 503.
        clock_offset: seconds added to the server clock for every expiry check (a test
            can "wait an hour" instantly).
        code_ttl, api_key_ttl, max_code_attempts: the sign-in rules.
        chunk_size: bytes per write when streaming a download.
        dialect: "current" (today's service: snake_case, `format`, `architecture`,
            OAuth) or "v1" (the seed document exactly: camelCase pages, `platform`).
            Both accept either spelling of the query parameters; "current" names the
            legacy ones it was given in X-Tone3000-Deprecations.
        oauth_code_ttl: lifetime of an OAuth authorization code (single use).
        device_ttl, device_interval: the device grant's `expires_in` and `interval`.
    """

    host: str = "127.0.0.1"
    port: int = 0
    storage_port: int = 0
    seed: int = DEFAULT_SEED
    bench_files: bool = False
    token_ttl: int = 3600
    refresh_ttl: int = THIRTY_DAYS
    rotate_refresh: bool = True
    rate_limit: int = 100
    rate_window: int = 60
    retry_after: Optional[int] = None
    range_support: bool = True
    storage_redirect: bool = False
    presign_ttl: int = 300
    chunked: bool = False
    cut_after: Optional[int] = None
    cut_queue: List[int] = field(default_factory=list)
    delay_ms: int = 0
    fail_5xx: int = 0
    clock_offset: float = 0.0
    code_ttl: int = 600
    api_key_ttl: int = 600
    max_code_attempts: int = 5
    chunk_size: int = 65536
    dialect: str = "current"
    oauth_code_ttl: int = 1800
    device_ttl: int = 600
    device_interval: int = 5

    def to_json(self):
        return dataclasses.asdict(self)

    def apply(self, changes):
        """Change run-time fields from a JSON object, all or nothing.

        Raises:
            ValueError: an unknown or start-up-only field, or a value of the wrong type.
        """
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object of fields to change")
        checked = {name: _check(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)
        return sorted(checked)

    def reset_faults(self):
        """Clear every injected fault (cuts, delay, failures, clock offset)."""
        self.cut_after = None
        self.cut_queue = []
        self.delay_ms = 0
        self.fail_5xx = 0
        self.clock_offset = 0.0

    def next_cut(self):
        """The cut offset for the next download body (consumes the queue), or None."""
        if self.cut_queue:
            return self.cut_queue.pop(0)
        return self.cut_after


STARTUP_ONLY = ("host", "port", "storage_port", "seed", "bench_files")
_FIELDS = {f.name: f for f in dataclasses.fields(EmulatorConfig)}
_OPTIONAL_INT = ("retry_after", "cut_after")
_POSITIVE = ("token_ttl", "refresh_ttl", "rate_window", "presign_ttl", "code_ttl", "api_key_ttl",
             "max_code_attempts", "chunk_size", "oauth_code_ttl", "device_ttl", "device_interval")
DIALECTS = ("current", "v1")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check(name, value):
    """The validated value for field `name`, or ValueError."""
    if name not in _FIELDS:
        raise ValueError("unknown field %r" % name)
    if name in STARTUP_ONLY:
        raise ValueError("%r can only be set at start-up" % name)
    default = _FIELDS[name].default
    if name == "dialect":
        if value not in DIALECTS:
            raise ValueError("dialect must be one of %s" % ", ".join(DIALECTS))
        return value
    if name == "cut_queue":
        if not isinstance(value, list) or not all(_is_int(v) and v >= 0 for v in value):
            raise ValueError("cut_queue must be a list of byte offsets (integers >= 0)")
        return list(value)
    if name == "clock_offset":
        if not (_is_int(value) or isinstance(value, float)):
            raise ValueError("clock_offset must be a number of seconds")
        return float(value)
    if name in _OPTIONAL_INT:
        if value is not None and not (_is_int(value) and value >= 0):
            raise ValueError("%s must be an integer >= 0 or null" % name)
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("%s must be true or false" % name)
        return value
    if not _is_int(value) or value < (1 if name in _POSITIVE else 0):
        raise ValueError("%s must be an integer >= %d" % (name, 1 if name in _POSITIVE else 0))
    return value
