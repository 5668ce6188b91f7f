"""Today's TONE3000 sign-in: OAuth 2.0 for public clients (PKCE) and the device grant.

    GET  /api/v1/oauth/authorize     client_id, redirect_uri, response_type=code,
                                     code_challenge, code_challenge_method=S256, state
                                     [, login_hint] -> the sign-in pages (email + emailed
                                     code), then a consent page; then 303 to
                                     redirect_uri?code&state (?error=access_denied on
                                     Deny, ?canceled=true on Cancel)
    GET  /api/v1/oauth/lan-bridge    307 to a device's LAN listener (the LAN relay)
    POST /api/v1/oauth/token         form: authorization_code | refresh_token | device_code
    POST /api/v1/oauth/device_authorization   form: client_id (RFC 8628)
    GET  /activate, POST /activate   the page where the user types a device's code
    POST /api/v1/oauth/consent       Allow / Deny (the consent page's forms)

Redirect URIs: loopback (`http://127.0.0.1:P/…`, `http://localhost:P/…`, `[::1]`) is
always accepted (RFC 8252 §7.3); `http://` to an RFC 1918 or link-local address is the
LAN relay: the browser is sent through /oauth/lan-bridge, which answers 307; any other
URI must be registered for the key once the key has registered URIs.  An unknown
client_id or a refused redirect_uri gives an error page (HTTP 400), never a redirect.

Codes are single use and expire after `oauth_code_ttl`; PKCE is checked (S256 only);
the redirect_uri of the exchange must be the authorize request's, byte for byte.
Refresh tokens rotate with reuse detection (credentials.py).  Token errors are
{"error", "error_description"}, like the real service's.
"""

import base64
import hashlib
import ipaddress
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Optional

from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.routing import Route

from tonebridge.dev import EMULATOR_CLIENT_ID

from . import pages
from .credentials import TokenError
from .signin import add_params, form_fields, html

DEMO_CLIENT_ID = EMULATOR_CLIENT_ID
DEMO_CLIENT_NAME = "tonebridge"
DEMO_REGISTERED = ("https://tonebridge.invalid/callback",)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels, no look-alikes
SLOW_DOWN_S = 5


@dataclass
class Client:
    client_id: str
    name: str
    redirect_uris: tuple = ()


@dataclass
class AuthRequest:
    id: str
    client: Client
    redirect_uri: str
    challenge: str
    state: Optional[str]
    lan: bool
    user_id: Optional[str] = None  # set once the user proved their email


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    challenge: str
    user_id: str
    expires: float
    used: bool = False
    family: Optional[str] = None


@dataclass
class DeviceAuth:
    device_code: str
    user_code: str
    client: Client
    expires: float
    interval: int
    status: str = "pending"  # pending, consent, approved, denied, redeemed
    user_id: Optional[str] = None
    last_poll: Optional[float] = None
    consent_id: Optional[str] = None  # the consent form's handle (never the device_code)


def redirect_kind(uri):
    """"loopback", "lan" or "web" for an acceptable absolute URI; None otherwise."""
    if not uri or any(c in uri for c in "\r\n\t #"):
        return None
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname
    if host == "localhost":
        return "loopback" if parts.scheme == "http" else "web"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "web"
    if address.is_loopback:
        return "loopback"
    if parts.scheme == "http" and address.version == 4 and (address.is_private or address.is_link_local):
        in_lan = any(address in ipaddress.ip_network(net)
                     for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"))
        return "lan" if in_lan else "web"
    return "web"


def s256(verifier):
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_error(code, description, status=400):
    return JSONResponse({"error": code, "error_description": description}, status,
                        headers={"Cache-Control": "no-store"})


class OAuth:
    """The OAuth endpoints of one emulator; `signin` proves the user's email."""

    def __init__(self, state, signin):
        self.state = state
        self.signin = signin
        self.clients = {DEMO_CLIENT_ID: Client(DEMO_CLIENT_ID, DEMO_CLIENT_NAME, DEMO_REGISTERED)}
        self.requests = {}  # AuthRequest id -> AuthRequest, until consent
        self.codes = {}  # code -> AuthCode
        self.devices = {}  # device_code -> DeviceAuth
        self.user_codes = {}  # user_code -> device_code
        self.consents = {}  # consent id -> DeviceAuth waiting for Allow / Deny

    def routes(self):
        return [
            Route("/api/v1/oauth/authorize", self.authorize, methods=["GET"]),
            Route("/api/v1/oauth/consent", self.consent, methods=["POST"]),
            Route("/api/v1/oauth/lan-bridge", self.lan_bridge, methods=["GET"]),
            Route("/api/v1/oauth/token", self.token, methods=["POST"]),
            Route("/api/v1/oauth/device_authorization", self.device_authorization, methods=["POST"]),
            Route("/activate", self.activate_form, methods=["GET"]),
            Route("/activate", self.activate, methods=["POST"]),
        ]

    # -- authorization code + PKCE --------------------------------------------------

    async def authorize(self, request):
        query = request.query_params
        client = self.clients.get(query.get("client_id", ""))
        if client is None:
            return _problem("Unknown app", "This app's client_id is not registered with TONE3000.")
        uri = query.get("redirect_uri", "")
        kind = redirect_kind(uri)
        if kind is None or (kind == "web" and client.redirect_uris and uri not in client.redirect_uris):
            return _problem("Redirect not allowed", "The redirect_uri is not registered for this app.")
        if query.get("response_type") != "code":
            return _problem("Bad sign-in request", "response_type must be code.")
        challenge = query.get("code_challenge", "")
        if query.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
            return _problem("Bad sign-in request", "A PKCE code_challenge with code_challenge_method=S256 is required.")
        auth = AuthRequest(secrets.token_urlsafe(18), client, uri, challenge, query.get("state"), kind == "lan")
        self.requests[auth.id] = auth
        return self.signin.begin(_CodePurpose(self, auth), query.get("login_hint"))

    def finish_code(self, auth, user_id, allowed):
        """The redirect that ends an authorize request (straight, or via the LAN bridge)."""
        self.requests.pop(auth.id, None)
        if allowed:
            code = secrets.token_urlsafe(24)
            self.codes[code] = AuthCode(auth.client.client_id, auth.redirect_uri, auth.challenge, user_id,
                                        self.state.now() + self.state.config.oauth_code_ttl)
            params = {"code": code}
        else:
            params = {"error": "access_denied"}
        if auth.state is not None:
            params["state"] = auth.state
        return self._back_to(auth, params)

    def _back_to(self, auth, params):
        target = add_params(auth.redirect_uri, params)
        if auth.lan:
            bridge = "/api/v1/oauth/lan-bridge?" + urllib.parse.urlencode({"to": target})
            return RedirectResponse(bridge, 303, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        return RedirectResponse(target, 303, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def lan_bridge(self, request):
        target = request.query_params.get("to", "")
        if redirect_kind(target) != "lan":
            return _problem("Not a device on your network",
                            "The LAN relay only leads to http:// addresses of a private network.")
        return RedirectResponse(target, 307, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def consent(self, request):
        fields = await form_fields(request)
        allowed = fields.get("decision") == "allow"
        if fields.get("kind") == "device":
            device = self.consents.pop(fields.get("request", ""), None)
            if device is None or device.status != "consent" or device.user_id is None:
                return _problem("Sign-in expired", "This device sign-in is no longer valid.")
            device.status = "approved" if allowed else "denied"
            return HTMLResponse(pages.device_done_page(allowed, device.client.name), headers={"Cache-Control": "no-store"})
        auth = self.requests.get(fields.get("request", ""))
        if auth is None or not auth.user_id:
            return _problem("Sign-in expired", "This sign-in page is no longer valid.")
        return self.finish_code(auth, auth.user_id, allowed)

    # -- the token endpoint -------------------------------------------------------

    async def token(self, request):
        fields = await form_fields(request)
        grant = fields.get("grant_type", "")
        client = self.clients.get(fields.get("client_id", ""))
        if client is None:
            return token_error("invalid_client", "Unknown client_id", 401)
        if grant == "authorization_code":
            return self._redeem_code(fields, client)
        if grant == "refresh_token":
            try:
                session = self.state.sessions.refresh_oauth(fields.get("refresh_token", ""), client.client_id)
            except TokenError as exc:
                return token_error(exc.code, str(exc))
            return JSONResponse(session, headers={"Cache-Control": "no-store"})
        if grant == DEVICE_GRANT:
            return self._poll_device(fields, client)
        return token_error("unsupported_grant_type", "grant_type must be authorization_code, refresh_token or "
                           "the device_code grant")

    def _redeem_code(self, fields, client):
        record = self.codes.get(fields.get("code", ""))
        if record is None:
            return token_error("invalid_grant", "Unknown authorization code")
        if record.used:
            if record.family:
                self.state.sessions.revoke_family(record.family)  # RFC 6749 §4.1.2: a replayed code
            return token_error("invalid_grant", "This authorization code was already used")
        if self.state.now() >= record.expires:
            return token_error("invalid_grant", "This authorization code has expired")
        if record.client_id != client.client_id:
            return token_error("invalid_grant", "This code was issued to another client")
        if fields.get("redirect_uri", "") != record.redirect_uri:
            return token_error("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = fields.get("code_verifier", "")
        if not 43 <= len(verifier) <= 128 or not secrets.compare_digest(s256(verifier), record.challenge):
            record.used = True  # a wrong verifier burns the code
            return token_error("invalid_grant", "code_verifier does not match the code_challenge")
        record.used = True
        session = self.state.sessions.issue_oauth(record.user_id, client.client_id)
        record.family = self.state.sessions.family_of(session["refresh_token"])
        return JSONResponse(session, headers={"Cache-Control": "no-store"})

    # -- the device grant -------------------------------------------------------------

    async def device_authorization(self, request):
        fields = await form_fields(request)
        client = self.clients.get(fields.get("client_id", ""))
        if client is None:
            return token_error("invalid_client", "Unknown client_id", 401)
        config = self.state.config
        user_code = "-".join("".join(secrets.choice(USER_CODE_LETTERS) for _ in range(4)) for _ in range(2))
        device = DeviceAuth(secrets.token_urlsafe(32), user_code, client, self.state.now() + config.device_ttl,
                            config.device_interval)
        self.devices[device.device_code] = device
        self.user_codes[user_code] = device.device_code
        origin = self.state.api_origin(request)
        return JSONResponse({
            "device_code": device.device_code, "user_code": user_code,
            "verification_uri": origin + "/activate",
            "verification_uri_complete": origin + "/activate?" + urllib.parse.urlencode({"user_code": user_code}),
            "expires_in": config.device_ttl, "interval": config.device_interval,
        }, headers={"Cache-Control": "no-store"})

    def _poll_device(self, fields, client):
        device = self.devices.get(fields.get("device_code", ""))
        if device is None or device.client.client_id != client.client_id:
            return token_error("invalid_grant", "Unknown device_code")
        now = self.state.now()
        if now >= device.expires:
            return token_error("expired_token", "The device code has expired")
        if device.status == "denied":
            return token_error("access_denied", "The user denied the request")
        if device.status == "redeemed":
            return token_error("invalid_grant", "This device code was already used")
        if device.status == "approved":
            device.status = "redeemed"
            return JSONResponse(self.state.sessions.issue_oauth(device.user_id, client.client_id),
                                headers={"Cache-Control": "no-store"})
        too_soon = device.last_poll is not None and now - device.last_poll < device.interval - 0.5
        device.last_poll = now
        if too_soon:
            device.interval += SLOW_DOWN_S
            return token_error("slow_down", "Polling too fast; wait %d s between polls" % device.interval)
        return token_error("authorization_pending", "The user has not finished signing in yet")

    async def activate_form(self, request):
        return HTMLResponse(pages.activate_page(request.query_params.get("user_code", "")),
                            headers={"Cache-Control": "no-store"})

    async def activate(self, request):
        fields = await form_fields(request)
        typed = "".join(c for c in fields.get("user_code", "").upper() if c.isalnum())
        user_code = typed[:4] + "-" + typed[4:] if len(typed) == 8 else typed
        device = self.devices.get(self.user_codes.get(user_code, ""))
        if device is None or self.state.now() >= device.expires or device.status != "pending":
            return HTMLResponse(pages.activate_page(fields.get("user_code", ""), "That code is not valid or has "
                                                    "expired. Check the code on your device."), 400)
        return self.signin.begin(_DevicePurpose(self, device))


class _CodePurpose:
    """What the sign-in pages do for an authorize request once the email is proven."""

    def __init__(self, oauth, auth):
        self.oauth = oauth
        self.auth = auth

    def complete(self, flow, user):
        self.auth.user_id = user.id
        return html(pages.consent_page("code", self.auth.id, self.auth.client.name, user.username))

    def cancel(self, flow):
        self.oauth.requests.pop(self.auth.id, None)
        params = {"canceled": "true"}
        if self.auth.state is not None:
            params["state"] = self.auth.state
        return self.oauth._back_to(self.auth, params)


class _DevicePurpose:
    """What the sign-in pages do for a device activation once the email is proven."""

    def __init__(self, oauth, device):
        self.oauth = oauth
        self.device = device

    def complete(self, flow, user):
        if self.device.status != "pending":
            return _problem("Sign-in expired", "This device sign-in is no longer valid.")
        self.device.user_id = user.id
        self.device.status = "consent"
        self.device.consent_id = secrets.token_urlsafe(18)
        self.oauth.consents[self.device.consent_id] = self.device
        return html(pages.consent_page("device", self.device.consent_id, self.device.client.name, user.username))

    def cancel(self, flow):
        self.device.status = "denied"
        return html(pages.device_done_page(False, self.device.client.name))


def _problem(title, message):
    return html(pages.problem_page(title, message), 400)
