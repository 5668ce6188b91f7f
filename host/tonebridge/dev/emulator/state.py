"""Everything one running emulator holds: config, catalogue, files, credentials, the
"sent" emails (outbox), the request log and the rate limiter.

The API and storage origins share one EmulatorState.  All request handling runs on one
event loop, so plain dicts and lists suffice; model files are built off the loop
(FileStore has its own lock).
"""

import collections
import datetime
import secrets
import sys
import time
import urllib.parse

from .catalogue import Catalogue
from .config import EmulatorConfig
from .model_files import FileStore
from .throttle import FixedWindowThrottle
from .credentials import Sessions

LOG_SIZE = 500


class EmulatorState:
    """Shared state of the API and storage origins.

    Args:
        config: EmulatorConfig (default: all defaults).
        base_url: the API origin as clients reach it, e.g. "http://127.0.0.1:54321";
            None (listening on all interfaces): taken from each request's Host.
        storage_url: the storage origin for presigned downloads (None: not running).
        out: where OTP codes and magic links are "emailed" (default: sys.stdout at the
            time of sending).
    """

    def __init__(self, config=None, base_url=None, storage_url=None, out=None):
        self.config = config or EmulatorConfig()
        self.base_url = base_url
        self.storage_url = storage_url
        self.out = out
        self.catalogue = Catalogue(self.config.seed, self.config.bench_files)
        self.files = FileStore(self.catalogue)
        self.sessions = Sessions(self.config, self.now)
        self.limiter = FixedWindowThrottle()
        self.outbox = []
        self.log = collections.deque(maxlen=LOG_SIZE)
        self.presign_secret = secrets.token_bytes(32)

    def now(self):
        """Seconds since the epoch on the emulator's clock (shifted by clock_offset)."""
        return time.time() + self.config.clock_offset

    def api_origin(self, request):
        """The API origin for absolute URLs in responses to `request`."""
        if self.base_url:
            return self.base_url
        return str(request.base_url).rstrip("/")

    def storage_origin(self, request):
        """The storage origin for a redirect answering `request` (same host as asked
        for when the emulator listens on all interfaces)."""
        if self.base_url or not self.storage_url:
            return self.storage_url
        host = request.url.hostname or "127.0.0.1"
        port = urllib.parse.urlsplit(self.storage_url).port
        return "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)

    def send_email(self, email, **content):
        """'Email' a code or link: one line on stdout and an outbox entry.

        Args:
            content: code=… or link=….
        """
        kind, value = next(iter(content.items()))
        label = "otp" if kind == "code" else "magic-link"
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        self.outbox.append(dict(email=email, time=stamp.replace("+00:00", "Z"), **content))
        out = self.out or sys.stdout
        try:
            out.write("%s: %s %s\n" % (label, email, value))
            out.flush()
        except (OSError, ValueError):  # stdout closed: the outbox still has it
            pass

    def reset(self):
        """Forget the request log, the outbox, injected faults and rate-limit windows."""
        self.log.clear()
        self.outbox.clear()
        self.config.reset_faults()
        self.limiter.reset()
