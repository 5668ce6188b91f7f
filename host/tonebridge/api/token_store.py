"""Files under the config home: the session (mode 0600) and small JSON caches.

The config home is `$TONEBRIDGE_HOME`, else the platform's user config directory
(`platformdirs.user_config_dir("tonebridge")`); it is created with mode 0700.

`session.json` holds one session:

    {"api": "https://www.tone3000.com/api/v1", "flow": "pkce", "client_id": "t3k_pub_…",
     "dialect": "current", "user": {"id": …, "username": …, …},
     "tokens": {"access_token": …, "refresh_token": …, "expires_in": 3600, "expires_at": 1700000000}}

`user` (optional) is the account's record as the service gave it at sign-in
(tonecore.records.User `to_json()`), for `tonebridge whoami` to answer without going
online.  `flow` is how the session was signed in ("pkce", "device", or the seed's "otp"),
`client_id` the publishable key an OAuth session is refreshed with, `dialect` how the
service spells its API (tonecore.dialect).  A session saved before these fields existed
reads as the seed's OTP flow and dialect.

Every file is written atomically with mode 0600 (tonebridge.fileio).
"""

import os

import platformdirs

from tonebridge.fileio import ensure_private_dir, fsync_dir, read_json, write_json

from tonecore.errors import ProtocolError, SignInRequired
from tonecore.session import Tokens

HOME_ENV = "TONEBRIDGE_HOME"
SESSION_FILE = "session.json"
FLOWS = ("pkce", "device", "otp")


class Profile:
    """How a session was made: its sign-in flow, client id and the service's dialect."""

    def __init__(self, flow="otp", client_id=None, dialect="v1"):
        self.flow = flow
        self.client_id = client_id
        self.dialect = dialect

    def to_record(self):
        record = {"flow": self.flow, "dialect": self.dialect}
        if self.client_id:
            record["client_id"] = self.client_id
        return record

    @classmethod
    def from_record(cls, record):
        flow = record.get("flow") if record.get("flow") in FLOWS else "otp"
        client_id = record.get("client_id") if isinstance(record.get("client_id"), str) else None
        dialect = record.get("dialect") if record.get("dialect") in ("current", "v1") else "v1"
        return cls(flow, client_id, dialect)


def config_home():
    """The config directory: $TONEBRIDGE_HOME or the platform's user config dir."""
    return os.environ.get(HOME_ENV) or platformdirs.user_config_dir("tonebridge")


class TokenStore:
    """The session file of one config home.

    Args:
        home: the config directory (see `config_home`).
    """

    def __init__(self, home=None):
        self.home = home or config_home()
        self.path = os.path.join(self.home, SESSION_FILE)
        self._known_refresh = None  # the refresh token this process last loaded or saved
        self.profile = Profile()  # of the session loaded, or the one being signed in
        self.user = None  # the account's record saved with the session loaded (a dict), if any

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
                "not signed in to %s (the saved session is for %s: add `--api %s` or set TONEBRIDGE_API, "
                "or run `tonebridge login --api %s`)" % (api_base, record["api"], record["api"], api_base)
            )
        try:
            tokens = Tokens.from_record(record["tokens"], now_ms, wall_s)
        except ProtocolError:
            raise SignInRequired("the saved session in %s is damaged; run `tonebridge login`" % self.path)
        self._known_refresh = tokens.refresh_token
        self.profile = Profile.from_record(record)
        self.user = record.get("user") if isinstance(record.get("user"), dict) else None
        return tokens

    def save(self, api_base, tokens, now_ms, wall_s):
        """Store `tokens` for `api_base` atomically (mode 0600), replacing any session."""
        ensure_private_dir(self.home)
        record = {"api": api_base.rstrip("/"), "tokens": tokens.to_record(now_ms, wall_s)}
        record.update(self.profile.to_record())
        if self.user:
            record["user"] = self.user
        write_json(self.path, record)
        self._known_refresh = tokens.refresh_token

    def remember_user(self, api_base, user):
        """Save `user` (a dict: a User record's `to_json()`) with the session for
        `api_base`, unless the saved session is for another API or already says so.

        Returns:
            True when the file was rewritten.
        """
        try:
            record = self._read()
        except SignInRequired:
            return False
        if record is None or record["api"].rstrip("/") != api_base.rstrip("/") or record.get("user") == user:
            return False
        record["user"] = user
        write_json(self.path, record)
        self.user = user
        return True

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
