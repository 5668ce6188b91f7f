"""Today's TONE3000 sign-in: OAuth 2.0 for a public client, with PKCE and the device grant.

Two flows behind the `SignInFlow` seam of tonecore.auth, both with the app's publishable
key (`t3k_pub_…`) as `client_id`:

`PkceSignIn` - authorization code with PKCE S256 (RFC 7636).  The browser opens
    GET /oauth/authorize?client_id&redirect_uri&response_type=code&code_challenge
        &code_challenge_method=S256&state
and comes back to `redirect_uri?code=…&state=…` (or `?error=…`, or `?canceled=true`).
The code is redeemed once, form-encoded:
    POST /oauth/token  grant_type=authorization_code, code, code_verifier, redirect_uri, client_id
The host's loopback listener and the pedal's LAN relay (its own `http://<LAN IP>`
address as redirect_uri) are both this flow.

`DeviceSignIn` - the device authorization grant (RFC 8628), for a device with no shared
LAN or no browser:
    POST /oauth/device_authorization  client_id
      -> device_code, user_code, verification_uri(_complete), expires_in, interval
    POST /oauth/token  grant_type=urn:ietf:params:oauth:grant-type:device_code, device_code, client_id
      -> 400 authorization_pending | slow_down (+5 s) | expired_token | access_denied, or tokens
`device_sign_in(client, flow, grant)` is the polling call: it yields Sleep between polls.

Refresh, for both: POST /oauth/token grant_type=refresh_token, refresh_token, client_id.
Refresh tokens rotate (the core persists the new pair before using it, and runs one
refresh at a time); a 400/401 from a refresh ends the session.

Errors come as {"error", "error_description"} and, from some endpoints, as
{"code", "error_code", "msg"}: `oauth_error()` reads both.
"""

import binascii
import hashlib
import os

from .errors import ApiError, ProtocolError, SignInError, UsageError
from .http import Request
from .session import Tokens
from .urls import split_url, urlencode
from .auth import SignInFlow, callback_params

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_S = 5  # RFC 8628 §3.5: add 5 s to the interval on slow_down
DEFAULT_INTERVAL_S = 5
KEYS_PAGE = "TONE3000 -> Settings -> API Keys"


def b64url(data):
    """Base64url without padding (RFC 7636 appendix A), the same on both runtimes."""
    text = binascii.b2a_base64(data).decode().strip()
    return text.replace("+", "-").replace("/", "_").replace("=", "")


def new_verifier():
    """A fresh PKCE code verifier: 32 random bytes, 43 characters."""
    return b64url(os.urandom(32))


def challenge_of(verifier):
    """The S256 code challenge of `verifier`."""
    return b64url(hashlib.sha256(verifier.encode()).digest())


def new_state():
    """A fresh, unguessable `state` value (16 random bytes)."""
    return b64url(os.urandom(16))


def form_request(url, fields):
    """A POST with a form-encoded body (application/x-www-form-urlencoded)."""
    headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
    return Request("POST", url, headers, urlencode(fields).encode(), False)


def check_client_id(client_id):
    """The publishable key, or a UsageError that says where to get one."""
    if not isinstance(client_id, str) or not client_id.strip():
        raise UsageError("no TONE3000 client id (publishable key): create one at %s and pass it with "
                         "--client-id or TONEBRIDGE_CLIENT_ID" % KEYS_PAGE)
    client_id = client_id.strip()
    for bad in " \t\r\n&#?":
        if bad in client_id:
            raise UsageError("that is not a publishable key: %r" % client_id)
    return client_id


def oauth_error(response):
    """(code, description) of an OAuth error body, in either shape; (None, None) if none."""
    try:
        data = response.json()
    except ProtocolError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    code = data.get("error")
    if not isinstance(code, str):
        code = data.get("error_code")
    description = data.get("error_description")
    if not isinstance(description, str):
        description = data.get("msg") if isinstance(data.get("msg"), str) else None
    return (code if isinstance(code, str) else None), description


def _describe(code, description):
    return code + (": " + description if description else "") if code else (description or "no details")


class OAuthFlow(SignInFlow):
    """What both OAuth flows share: the token endpoint, its errors, the refresh (a
    session's refreshes need only this)."""

    name = "oauth"

    def __init__(self, api_base, client_id):
        self.api_base = api_base.rstrip("/")
        split_url(self.api_base)
        self.client_id = check_client_id(client_id)

    @property
    def token_url(self):
        return self.api_base + "/oauth/token"

    def parse_tokens(self, response, now_ms):
        if response.status in (400, 401, 403):
            code, description = oauth_error(response)
            if code == "invalid_client":
                raise SignInError("TONE3000 does not know this client id (publishable key); check it at %s"
                                  % KEYS_PAGE)
            raise SignInError("TONE3000 refused the sign-in (HTTP %d): %s" % (response.status, _describe(code, description)))
        if response.status != 200:
            raise ApiError("TONE3000 token endpoint failed (HTTP %d): %s"
                           % (response.status, response.error_message("no details")), response.status)
        return Tokens.from_session(response.json(), now_ms)

    def refresh_request(self, tokens):
        return form_request(self.token_url, [("grant_type", "refresh_token"), ("refresh_token", tokens.refresh_token),
                                             ("client_id", self.client_id)])


class PkceSignIn(OAuthFlow):
    """One sign-in with the authorization code + PKCE (a new verifier and state each).

    Args:
        api_base: e.g. "https://www.tone3000.com/api/v1".
        client_id: the publishable key.
        redirect_uri: where TONE3000 sends the browser back (loopback, or the pedal's
            LAN address); it is sent again, unchanged, with the code.
        verifier, state: for tests; fresh random values by default.
    """

    name = "pkce"

    def __init__(self, api_base, client_id, redirect_uri, verifier=None, state=None, login_hint=None):
        OAuthFlow.__init__(self, api_base, client_id)
        if redirect_uri is not None:
            split_url(redirect_uri)
        self.redirect_uri = redirect_uri
        self.verifier = verifier or new_verifier()
        self.state = state or new_state()
        self.login_hint = login_hint

    def start_url(self):
        if not self.redirect_uri:
            raise UsageError("a redirect_uri is needed to start sign-in")
        params = [("client_id", self.client_id), ("redirect_uri", self.redirect_uri), ("response_type", "code"),
                  ("code_challenge", challenge_of(self.verifier)), ("code_challenge_method", "S256"),
                  ("state", self.state)]
        if self.login_hint:
            params.append(("login_hint", self.login_hint))
        return self.api_base + "/oauth/authorize?" + urlencode(params)

    def code_from_callback(self, callback):
        """The authorization code of a callback (URL, query or dict) whose state is ours.

        Raises:
            SignInError: an error or cancel callback, a state that is not ours, no code.
        """
        params = callback_params(callback)
        if params.get("canceled") in ("true", "1"):
            raise SignInError("sign-in was cancelled")
        error = params.get("error")
        if error:
            if error == "access_denied":
                raise SignInError("sign-in was declined (access denied)")
            raise SignInError("sign-in failed: %s" % _describe(error, params.get("error_description")))
        if params.get("state") != self.state:
            raise SignInError("that sign-in answer is not for this sign-in (state mismatch); start again")
        code = (params.get("code") or "").strip()
        if not code:
            raise SignInError("the sign-in answer has no code")
        return code

    def exchange_request(self, callback):
        code = self.code_from_callback(callback)
        return form_request(self.token_url, [
            ("grant_type", "authorization_code"), ("code", code), ("code_verifier", self.verifier),
            ("redirect_uri", self.redirect_uri), ("client_id", self.client_id)])


class DeviceGrant:
    """What /oauth/device_authorization answered: the codes and the polling rules.

    Attributes: device_code (secret), user_code, verification_uri,
    verification_uri_complete (or None), interval_s, expires_ms (on the caller's clock).
    """

    def __init__(self, data, now_ms):
        if not isinstance(data, dict):
            raise ProtocolError("the device authorization response is not a JSON object")
        for name in ("device_code", "user_code", "verification_uri"):
            if not isinstance(data.get(name), str) or not data.get(name):
                raise ProtocolError("the device authorization response has no %s" % name)
        self.device_code = data["device_code"]
        self.user_code = data["user_code"]
        self.verification_uri = data["verification_uri"]
        complete = data.get("verification_uri_complete")
        self.verification_uri_complete = complete if isinstance(complete, str) and complete else None
        expires_in = data.get("expires_in")
        interval = data.get("interval", DEFAULT_INTERVAL_S)
        if type(expires_in) is not int or expires_in <= 0:
            raise ProtocolError("the device authorization response has no valid expires_in")
        if type(interval) is not int or interval < 1:
            interval = DEFAULT_INTERVAL_S
        self.interval_s = interval
        self.expires_ms = now_ms + expires_in * 1000

    def __repr__(self):  # never the device_code
        return "<DeviceGrant %s>" % self.user_code


PENDING = "pending"
SLOW_DOWN = "slow_down"


class DeviceSignIn(OAuthFlow):
    """The device authorization grant (RFC 8628) for `client_id`."""

    name = "device"

    def authorization_request(self):
        return form_request(self.api_base + "/oauth/device_authorization", [("client_id", self.client_id)])

    def parse_authorization(self, response, now_ms):
        """The DeviceGrant of a /oauth/device_authorization response."""
        if response.status != 200:
            code, description = oauth_error(response)
            if code == "invalid_client":
                raise SignInError("TONE3000 does not know this client id (publishable key); check it at %s"
                                  % KEYS_PAGE)
            raise SignInError("TONE3000 refused to start a device sign-in (HTTP %d): %s"
                              % (response.status, _describe(code, description)))
        return DeviceGrant(response.json(), now_ms)

    def poll_request(self, grant):
        return form_request(self.token_url, [("grant_type", DEVICE_GRANT), ("device_code", grant.device_code),
                                             ("client_id", self.client_id)])

    def parse_poll(self, response, now_ms):
        """Tokens, or PENDING / SLOW_DOWN while the user has not decided.

        Raises:
            SignInError: the code expired or the user denied it; any other refusal.
        """
        if response.status == 400 or response.status == 401:
            code, description = oauth_error(response)
            if code == "authorization_pending":
                return PENDING
            if code == "slow_down":
                return SLOW_DOWN
            if code == "expired_token":
                raise SignInError("the sign-in code expired before it was used; start again")
            if code == "access_denied":
                raise SignInError("sign-in was declined (access denied)")
        return self.parse_tokens(response, now_ms)

    def exchange_request(self, callback):
        raise UsageError("the device grant has no callback; use device_sign_in()")

    def start_url(self):
        raise UsageError("the device grant has no start URL; see the DeviceGrant's verification_uri")


def device_authorize(client, flow):
    """Call: ask for a device sign-in -> DeviceGrant (show its user_code and URL)."""
    yield from client._pace()
    response = yield flow.authorization_request()
    return flow.parse_authorization(response, client.clock_ms())


def device_sign_in(client, flow, grant):
    """Call: poll until the user approved `grant` -> the new Tokens (persisted, in use).

    Waits `interval` between polls (5 s more after each slow_down, and twice as long
    after a network failure, RFC 8628 §3.5); gives up when the grant expires.

    Raises:
        SignInError: expired or denied, or the service refused otherwise.
    """
    from .client import Persist, Sleep
    from .errors import TransportError

    interval_s = grant.interval_s
    while True:
        if client.clock_ms() + interval_s * 1000 >= grant.expires_ms:
            raise SignInError("the sign-in code expired before it was used; start again")
        yield Sleep(interval_s * 1000)
        try:
            yield from client._pace()
            response = yield flow.poll_request(grant)
        except TransportError:
            interval_s = min(interval_s * 2, 60)
            continue
        outcome = flow.parse_poll(response, client.clock_ms())
        if outcome == PENDING:
            continue
        if outcome == SLOW_DOWN:
            interval_s += SLOW_DOWN_S
            continue
        yield Persist(outcome)
        client.session.adopt(outcome)
        return outcome
