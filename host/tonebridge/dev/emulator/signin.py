"""The sign-in pages: GET /api/v1/auth?redirect_url=…[&otp_only=true] and its forms.

    GET  /api/v1/auth            email form (400 page for a missing/invalid redirect_url)
    POST /api/v1/auth/email      "sends" a 6-digit code (otp_only) or a magic link
    POST /api/v1/auth/code       checks the code -> 303 to redirect_url?api_key=…
    POST /api/v1/auth/resend     a new code / link (the previous one dies)
    POST /api/v1/auth/cancel     303 to redirect_url?error=access_denied
    GET  /api/v1/auth/magic      the emailed link -> 303 to redirect_url?api_key=…

The same pages prove the user's email for the OAuth flows (`oauth.py`): a flow started
by `begin(purpose)` ends in `purpose.complete(flow, user)` (the consent step) instead of
the api_key redirect, and its Cancel in `purpose.cancel(flow)`.

The state of each sign-in (a "flow") stays on the server, keyed by a random hidden field
`flow`.  Codes: 6 digits, single use, valid `code_ttl`, dead after `max_code_attempts`
wrong tries.  Links: single use, valid `code_ttl`.
"""

import datetime
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Optional

from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Route

from . import pages

FLOW_TTL = 3600
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class Flow:
    id: str
    redirect_url: str
    otp_only: bool
    expires: float
    email: Optional[str] = None
    code: Optional[str] = None
    code_expires: float = 0.0
    attempts: int = 0
    used: bool = False
    link_token: Optional[str] = None
    purpose: Optional[object] = None  # an OAuth sign-in: what happens once the email is proven


def valid_redirect(url):
    """True for an absolute http(s) URL with a host."""
    if not url or any(c in url for c in "\r\n\t "):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def add_params(url, params):
    """`url` with `params` appended to its query (before any #fragment)."""
    parts = urllib.parse.urlsplit(url)
    extra = urllib.parse.urlencode(params)
    query = parts.query + "&" + extra if parts.query else extra
    return urllib.parse.urlunsplit(parts._replace(query=query))


async def form_fields(request):
    """An urlencoded form body as a dict of first values (no python-multipart needed)."""
    text = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}


def html(page, status=200):
    return HTMLResponse(page, status, headers={"Cache-Control": "no-store"})


class SignIn:
    """The sign-in flows of one emulator (see the module docstring)."""

    def __init__(self, state):
        self.state = state
        self.flows = {}
        self.links = {}  # token -> flow id

    def routes(self):
        return [
            Route("/api/v1/auth", self.start, methods=["GET"]),
            Route("/api/v1/auth/email", self.email, methods=["POST"]),
            Route("/api/v1/auth/code", self.code, methods=["POST"]),
            Route("/api/v1/auth/resend", self.resend, methods=["POST"]),
            Route("/api/v1/auth/cancel", self.cancel, methods=["POST"]),
            Route("/api/v1/auth/magic", self.magic, methods=["GET"]),
        ]

    def begin(self, purpose, login_hint=None):
        """Start an OTP sign-in for an OAuth flow (see the module docstring); the email page."""
        self._expire_flows()
        flow = Flow(secrets.token_urlsafe(18), "", True, self.state.now() + FLOW_TTL, purpose=purpose)
        self.flows[flow.id] = flow
        hint = login_hint if login_hint and EMAIL_RE.match(login_hint) else ""
        return html(pages.email_page(flow.id, True, hint))

    # -- handlers -----------------------------------------------------------------

    async def start(self, request):
        redirect_url = request.query_params.get("redirect_url", "")
        if not valid_redirect(redirect_url):
            what = "is missing" if not redirect_url else "is not an absolute http(s) URL"
            return html(pages.problem_page("Bad sign-in request", "The redirect_url parameter %s." % what), 400)
        otp_only = request.query_params.get("otp_only", "").lower() in ("true", "1", "yes")
        self._expire_flows()
        flow = Flow(secrets.token_urlsafe(18), redirect_url, otp_only, self.state.now() + FLOW_TTL)
        self.flows[flow.id] = flow
        return html(pages.email_page(flow.id, otp_only))

    async def email(self, request):
        fields = await form_fields(request)
        flow = self.flows.get(fields.get("flow", ""))
        if flow is None:
            return self._flow_gone()
        email = fields.get("email", "").strip()
        if not EMAIL_RE.match(email):
            return html(pages.email_page(flow.id, flow.otp_only, email, "Enter a valid email address."), 400)
        flow.email = email
        return self._send(request, flow)

    async def resend(self, request):
        flow = self.flows.get((await form_fields(request)).get("flow", ""))
        if flow is None or not flow.email:
            return self._flow_gone()
        return self._send(request, flow, notice="We sent a new %s." % ("code" if flow.otp_only else "link"))

    async def code(self, request):
        fields = await form_fields(request)
        flow = self.flows.get(fields.get("flow", ""))
        if flow is None or not flow.code:
            return self._flow_gone()
        typed = re.sub(r"\s+", "", fields.get("code", ""))
        if flow.used:
            return html(pages.code_dead_page(flow.id, flow.email, "This code was already used."), 400)
        if self.state.now() >= flow.code_expires:
            return html(pages.code_dead_page(flow.id, flow.email, "This code has expired."), 400)
        if flow.attempts >= self.state.config.max_code_attempts:
            return html(pages.code_dead_page(flow.id, flow.email, "Too many wrong codes."), 400)
        if not re.fullmatch(r"[0-9]{6}", typed):
            return html(pages.code_page(flow.id, flow.email, "Enter the 6 digits from the email."), 400)
        if not secrets.compare_digest(typed, flow.code):
            flow.attempts += 1
            left = self.state.config.max_code_attempts - flow.attempts
            if left <= 0:
                return html(pages.code_dead_page(flow.id, flow.email, "Too many wrong codes."), 400)
            message = "That code is not right. %d attempt%s left." % (left, "" if left == 1 else "s")
            return html(pages.code_page(flow.id, flow.email, message), 400)
        flow.used = True
        return self._complete(flow)

    async def magic(self, request):
        token = request.query_params.get("token", "")
        flow = self.flows.get(self.links.get(token, ""))
        if flow is None or flow.link_token != token or flow.used or self.state.now() >= flow.code_expires:
            restart = None
            if flow is not None and flow.purpose is None:
                restart = "/api/v1/auth?" + urllib.parse.urlencode({"redirect_url": flow.redirect_url})
            return html(pages.problem_page("Link not valid", "This sign-in link has expired or was already used.",
                                           restart), 400)
        flow.used = True
        self.links.pop(token, None)
        return self._complete(flow)

    async def cancel(self, request):
        flow = self.flows.pop((await form_fields(request)).get("flow", ""), None)
        if flow is None:
            return self._flow_gone()
        if flow.purpose is not None:
            return flow.purpose.cancel(flow)
        return RedirectResponse(add_params(flow.redirect_url, {"error": "access_denied"}), 303)

    # -- helpers ------------------------------------------------------------------

    def _send(self, request, flow, notice=None):
        """Make a new code or link for `flow`, 'email' it, show the next page."""
        flow.used = False
        flow.attempts = 0
        flow.code_expires = self.state.now() + self.state.config.code_ttl
        if flow.otp_only:
            flow.code = "%06d" % secrets.randbelow(1000000)
            self.state.send_email(flow.email, code=flow.code)
            return html(pages.code_page(flow.id, flow.email, notice=notice))
        if flow.link_token:
            self.links.pop(flow.link_token, None)
        flow.link_token = secrets.token_urlsafe(24)
        self.links[flow.link_token] = flow.id
        link = "%s/api/v1/auth/magic?token=%s" % (self.state.api_origin(request), flow.link_token)
        self.state.send_email(flow.email, link=link)
        return html(pages.link_sent_page(flow.id, flow.email, notice))

    def _complete(self, flow):
        user = self.state.catalogue.user_for_email(flow.email, _utc(self.state.now()))
        if flow.purpose is not None:
            return flow.purpose.complete(flow, user)
        api_key = self.state.sessions.issue_api_key(user.id)
        return RedirectResponse(add_params(flow.redirect_url, {"api_key": api_key}), 303,
                                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    def _flow_gone(self):
        return html(pages.problem_page("Sign-in expired", "This sign-in page is no longer valid."), 400)

    def _expire_flows(self):
        now = self.state.now()
        for flow_id in [k for k, f in self.flows.items() if f.expires <= now]:
            flow = self.flows.pop(flow_id)
            self.links.pop(flow.link_token or "", None)


def _utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
