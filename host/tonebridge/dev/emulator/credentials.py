"""api_keys, access tokens and refresh tokens: issue, exchange, refresh, check.

Every secret is a random opaque string (`secrets.token_urlsafe`).  Nothing here logs or
prints a secret.  Expiry is judged against `clock()` (the emulator's clock, which tests
can move forward), and lifetimes are read from the config when a token is issued.

Rules:
    api_key        single use, valid `api_key_ttl` (10 min)
    access token   valid `token_ttl`; revoked when its refresh token is rotated
    refresh token  valid `refresh_ttl`; with `rotate_refresh` each use returns a new one
                   and revokes the old one and its access token; without rotation the
                   same refresh token is returned and stays valid

OAuth sessions (`issue_oauth`, `refresh_oauth`) belong to a client id and always rotate.
Every token of one sign-in is one *family* (the session id): presenting a refresh token
that was already rotated away is taken as theft and revokes the whole family, the
current pair included (RFC 9700 §4.14.2).
"""

import secrets
from dataclasses import dataclass


class TokenError(Exception):
    """A credential was refused.  `code` is the JSON error code, `str()` the message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@dataclass
class _Grant:
    user_id: str
    session_id: str  # the family: every token of one sign-in
    expires: float
    revoked: bool = False
    pair: str = ""  # access token of a refresh token
    client_id: str = ""  # OAuth sessions only
    rotated: bool = False  # a refresh token that was used (and so replaced)


class Sessions:
    """The credential store.

    Args:
        config: the EmulatorConfig (lifetimes, rotation), read at each call.
        clock: function returning the current time in seconds since the epoch.
    """

    def __init__(self, config, clock):
        self.config = config
        self.clock = clock
        self._api_keys = {}  # key -> [user_id, expires, used]
        self._access = {}
        self._refresh = {}

    def issue_api_key(self, user_id):
        key = "t3k_" + secrets.token_urlsafe(24)
        self._api_keys[key] = [user_id, self.clock() + self.config.api_key_ttl, False]
        return key

    def exchange(self, api_key):
        """A new Session (dict) for a valid, unused api_key.

        Raises:
            TokenError: unknown, used or expired key.
        """
        record = self._api_keys.get(api_key) if isinstance(api_key, str) else None
        if record is None:
            raise TokenError("invalid_api_key", "Unknown api_key")
        if record[2]:
            raise TokenError("invalid_api_key", "This api_key was already used")
        if self.clock() >= record[1]:
            raise TokenError("invalid_api_key", "This api_key has expired")
        record[2] = True
        return self._new_session(record[0], secrets.token_hex(8))

    def refresh(self, refresh_token, access_token=None):
        """A new Session for a valid refresh token (see the module rules).

        Raises:
            TokenError: unknown, expired, revoked or rotated refresh token, or an
                access_token from another session.
        """
        grant = self._valid(self._refresh, refresh_token, "invalid_grant", "refresh_token",
                            "was already used or revoked", "has expired; sign in again")
        other = self._access.get(access_token) if access_token else None
        if other is not None and other.session_id != grant.session_id:
            raise TokenError("invalid_grant", "The access_token does not belong to this refresh_token")
        if not self.config.rotate_refresh:
            access = self._new_access(grant.user_id, grant.session_id)
            grant.pair = access
            return self._session(access, refresh_token)
        grant.revoked = True
        old = self._access.get(grant.pair)
        if old is not None:
            old.revoked = True
        return self._new_session(grant.user_id, grant.session_id)

    def authenticate(self, access_token):
        """The user id of a valid access token.

        Raises:
            TokenError: unknown, revoked or expired token.
        """
        return self._valid(self._access, access_token, "invalid_token", "access token", "was revoked",
                           "has expired").user_id

    def _valid(self, store, token, code, what, revoked, expired):
        """The live grant of `token` in `store`, or TokenError(code, why not)."""
        grant = store.get(token)
        if grant is None:
            raise TokenError(code, "Unknown " + what)
        if grant.revoked:
            raise TokenError(code, "This %s %s" % (what, revoked))
        if self.clock() >= grant.expires:
            raise TokenError(code, "This %s %s" % (what, expired))
        return grant

    # -- OAuth ------------------------------------------------------------------------

    def issue_oauth(self, user_id, client_id):
        """A new OAuth session (a new family) for `user_id` signed in through `client_id`."""
        return self._new_session(user_id, secrets.token_hex(8), client_id)

    def refresh_oauth(self, refresh_token, client_id):
        """A new pair for an OAuth refresh token; the old one is rotated away.

        Raises:
            TokenError: invalid_grant (unknown, expired, revoked, another client's, or a
                reused one: then the whole family is revoked).
        """
        grant = self._refresh.get(refresh_token) if isinstance(refresh_token, str) else None
        if grant is None or not grant.client_id:
            raise TokenError("invalid_grant", "Unknown refresh_token")
        if grant.client_id != client_id:
            raise TokenError("invalid_grant", "This refresh_token was issued to another client")
        if grant.rotated:
            self.revoke_family(grant.session_id)
            raise TokenError("invalid_grant", "This refresh_token was already used; the session is revoked")
        if grant.revoked:
            raise TokenError("invalid_grant", "This refresh_token was revoked")
        if self.clock() >= grant.expires:
            raise TokenError("invalid_grant", "This refresh_token has expired; sign in again")
        grant.rotated = grant.revoked = True
        old = self._access.get(grant.pair)
        if old is not None:
            old.revoked = True
        return self._new_session(grant.user_id, grant.session_id, client_id)

    def family_of(self, refresh_token):
        """The family (session id) of a refresh token, or None."""
        grant = self._refresh.get(refresh_token)
        return grant.session_id if grant is not None else None

    def revoke_family(self, session_id):
        """Revoke every access and refresh token of one sign-in."""
        for store in (self._access, self._refresh):
            for grant in store.values():
                if grant.session_id == session_id:
                    grant.revoked = True

    def _new_access(self, user_id, session_id):
        token = secrets.token_urlsafe(32)
        self._access[token] = _Grant(user_id, session_id, self.clock() + self.config.token_ttl)
        return token

    def _new_session(self, user_id, session_id, client_id=""):
        access = self._new_access(user_id, session_id)
        refresh = secrets.token_urlsafe(40)
        self._refresh[refresh] = _Grant(user_id, session_id, self.clock() + self.config.refresh_ttl, pair=access,
                                        client_id=client_id)
        session = self._session(access, refresh)
        if client_id:
            session["scope"] = "read"
        return session

    def _session(self, access, refresh):
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.config.token_ttl,
                "token_type": "bearer"}
