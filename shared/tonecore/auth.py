"""Sign-in flows.

A flow knows four things: the URL that starts sign-in in a browser, how to turn the
browser's callback into a token request, how to parse the tokens, and how to build a
refresh request.  Session and client code only talk to that interface, so the OAuth 2.0
+ PKCE flow of the current service can be added beside `OtpSignIn` without touching
them.

`OtpSignIn` is TONE3000 API v1 as documented: GET /auth?redirect_url=…&otp_only=true
sends the user a 6-digit code by email; the browser comes back to redirect_url with
`api_key`; POST /auth/session {"api_key"} returns a Session; POST
/auth/session/refresh {"refresh_token", "access_token"} refreshes it.
"""

from .errors import ApiError, SignInError, UsageError
from .http import json_request
from .session import Tokens
from .urls import parse_query, split_url, urlencode



class SignInFlow:
    """The seam every sign-in flow implements (see the module docstring)."""

    name = "abstract"

    def start_url(self):
        """The URL to open in a browser to begin sign-in."""
        raise NotImplementedError

    def exchange_request(self, callback):
        """Request that trades the callback's credentials for tokens.

        Args:
            callback: dict of the callback's query parameters.
        Raises:
            SignInError: the callback carries an error or no credentials.
        """
        raise NotImplementedError

    def parse_tokens(self, response, now_ms):
        """Tokens from a token-endpoint response (exchange or refresh)."""
        raise NotImplementedError

    def refresh_request(self, tokens):
        """Request that refreshes `tokens`."""
        raise NotImplementedError


class OtpSignIn(SignInFlow):
    """TONE3000 API v1 sign-in with an emailed 6-digit code (otp_only=true).

    Args:
        api_base: e.g. "https://www.tone3000.com/api/v1" (no trailing slash needed).
        redirect_url: where the service sends the browser back with `api_key`.
        otp_only: True for the 6-digit code (devices); False for a magic link.
    """

    name = "otp"

    def __init__(self, api_base, redirect_url, otp_only=True):
        self.api_base = api_base.rstrip("/")
        split_url(self.api_base)
        if redirect_url is not None:
            split_url(redirect_url)
        self.redirect_url = redirect_url
        self.otp_only = otp_only

    def start_url(self):
        if not self.redirect_url:
            raise UsageError("a redirect_url is needed to start sign-in")
        params = [("redirect_url", self.redirect_url)]
        if self.otp_only:
            params.append(("otp_only", "true"))
        return self.api_base + "/auth?" + urlencode(params)

    def exchange_request(self, callback):
        api_key = api_key_from_callback(callback)
        return json_request("POST", self.api_base + "/auth/session", {"api_key": api_key})

    def parse_tokens(self, response, now_ms):
        if response.status in (400, 401, 403):
            raise SignInError(
                "TONE3000 refused the sign-in (HTTP %d): %s"
                % (response.status, response.error_message("the key is invalid, used or expired"))
            )
        if response.status != 200:
            raise ApiError(
                "TONE3000 session endpoint failed (HTTP %d): %s" % (response.status, response.error_message("no details")),
                response.status,
            )
        return Tokens.from_session(response.json(), now_ms)

    def refresh_request(self, tokens):
        body = {"refresh_token": tokens.refresh_token, "access_token": tokens.access_token}
        return json_request("POST", self.api_base + "/auth/session/refresh", body)


def callback_params(callback):
    """Query parameters of a callback given as a URL, a query string or a dict."""
    if isinstance(callback, dict):
        return callback
    text = callback.strip()
    if "?" in text:
        text = text.split("?", 1)[1]
    if "#" in text:
        text = text.split("#", 1)[0]
    return parse_query(text)


def api_key_from_callback(callback):
    """The api_key from a callback (URL, query string, dict or the bare key itself).

    Raises:
        SignInError: the callback reports an error, or holds no api_key.
    """
    if isinstance(callback, str) and "=" not in callback and "?" not in callback:
        key = callback.strip()
        if key and " " not in key:
            return key
        raise SignInError("that is not an api_key or a callback URL")
    params = callback_params(callback)
    if params.get("error"):
        detail = params.get("error_description") or params.get("message") or ""
        raise SignInError("sign-in was not completed: %s%s" % (params["error"], (" (" + detail + ")") if detail else ""))
    key = params.get("api_key", "").strip()
    if not key:
        raise SignInError("the callback has no api_key parameter")
    return key
