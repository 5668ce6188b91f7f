"""Files under the config home: the session (mode 0600) and small JSON caches.

The config home is `$TONEBRIDGE_HOME`, else the platform's user config directory
(`platformdirs.user_config_dir("tonebridge")`); it is created with mode 0700.

`session.json` holds one session:

    {"api": "https://www.tone3000.com/api/v1", "flow": "otp",
     "tokens": {"access_token": …, "refresh_token": …, "expires_in": 3600, "expires_at": 1700000000}}

Every file is written atomically: a temporary file in the same directory, created with
mode 0600 (never readable by others, not even for a moment), fsync, `os.replace`, and
an fsync of the directory.  A reader sees the old file or the new one, never half.
"""

import json
import os
import tempfile

import platformdirs

from tonecore.errors import ProtocolError, SignInRequired
from tonecore.session import Tokens

HOME_ENV = "TONEBRIDGE_HOME"
SESSION_FILE = "session.json"
FLOW = "otp"


def config_home():
    """The config directory: $TONEBRIDGE_HOME or the platform's user config dir."""
    return os.environ.get(HOME_ENV) or platformdirs.user_config_dir("tonebridge")


def ensure_private_dir(path):
    """Create `path` (and parents) if needed and make it 0700 (best effort elsewhere)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError:  # pragma: no cover - a directory we may not own; the files stay 0600
        pass


def write_atomic(path, data):
    """Replace `path` with `data` (bytes) atomically; the file is mode 0600 from creation."""
    directory = os.path.dirname(os.path.abspath(path))
    # mkstemp opens with O_CREAT|O_EXCL and mode 0600: no window where others can read it.
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def fsync_dir(directory):
    """Make a rename in `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def read_json(path):
    """Parsed JSON of `path`, or None when it does not exist.

    Raises:
        ValueError: the file is not valid JSON.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return json.loads(data.decode("utf-8"))


def write_json(path, value):
    """Write `value` as stable JSON (sorted keys) atomically with mode 0600."""
    write_atomic(path, (json.dumps(value, sort_keys=True, indent=2) + "\n").encode("utf-8"))


class TokenStore:
    """The session file of one config home.

    Args:
        home: the config directory (see `config_home`).
    """

    def __init__(self, home=None):
        self.home = home or config_home()
        self.path = os.path.join(self.home, SESSION_FILE)
        self._known_refresh = None  # the refresh token this process last loaded or saved

    def _read(self):
        """The stored record, or None.

        Raises:
            SignInRequired: the file is damaged.
        """
        try:
            record = read_json(self.path)
        except (ValueError, UnicodeError):
            raise SignInRequired("the saved session in %s is damaged; run `tonebridge login`" % self.path)
        if record is None:
            return None
        if not (isinstance(record, dict) and isinstance(record.get("api"), str) and isinstance(record.get("tokens"), dict)):
            raise SignInRequired("the saved session in %s is damaged; run `tonebridge login`" % self.path)
        return record

    def stored_api(self):
        """The API base of the saved session, or None (no session or a damaged one)."""
        try:
            record = self._read()
        except SignInRequired:
            return None
        return record["api"] if record else None

    def load(self, api_base, now_ms, wall_s):
        """The saved Tokens for `api_base`, or None when not signed in there.

        Raises:
            SignInRequired: the file is damaged, or holds a session for another API
                (the message says which).
        """
        record = self._read()
        if record is None:
            return None
        if record["api"].rstrip("/") != api_base.rstrip("/"):
            raise SignInRequired(
                "not signed in to %s (the saved session is for %s); run `tonebridge login --api %s`"
                % (api_base, record["api"], api_base)
            )
        try:
            tokens = Tokens.from_record(record["tokens"], now_ms, wall_s)
        except ProtocolError:
            raise SignInRequired("the saved session in %s is damaged; run `tonebridge login`" % self.path)
        self._known_refresh = tokens.refresh_token
        return tokens

    def save(self, api_base, tokens, now_ms, wall_s):
        """Store `tokens` for `api_base` atomically (mode 0600), replacing any session."""
        ensure_private_dir(self.home)
        record = {"api": api_base.rstrip("/"), "flow": FLOW, "tokens": tokens.to_record(now_ms, wall_s)}
        write_json(self.path, record)
        self._known_refresh = tokens.refresh_token

    def delete(self, api_base=None):
        """Remove the saved session.

        With `api_base`, only a session for that API is removed, and only if it is
        the one this process last loaded or saved: another tonebridge process may
        have refreshed it meanwhile (refresh tokens rotate), and its fresh tokens
        must survive our stale ones being refused.

        Returns:
            True when a file was removed.
        """
        if api_base is not None:
            try:
                record = self._read()
            except SignInRequired:
                record = None  # damaged: removing it is right
            if record is not None:
                if record["api"].rstrip("/") != api_base.rstrip("/"):
                    return False
                stored = record["tokens"].get("refresh_token")
                if self._known_refresh is not None and stored != self._known_refresh:
                    return False
        self._known_refresh = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        fsync_dir(self.home)
        return True
