"""ASGI middleware in front of both origins: request log, latency, 503s, rate limit.

For every request except /_emulator/*:
    1. append a log entry (method, path, origin, status, has_authorization, range,
       bytes sent, cut) - never a header value other than Range;
    2. wait `delay_ms`;
    3. API paths and the storage origin: answer 503 while `fail_5xx` > 0 (counting down);
    4. API paths: count against the rate limit; answer 429 when over it; add the
       X-RateLimit-* headers to every response.
"""

import asyncio
import datetime
import hashlib

from starlette.responses import JSONResponse

from .file_serving import ConnectionCut, s3_error


def _client_key(scope, headers):
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return "token:" + hashlib.sha256(auth[7:].strip().encode()).hexdigest()[:24]
    client = scope.get("client") or ("?", 0)
    return "ip:" + str(client[0])


class EmulatorMiddleware:
    """Wraps an origin's app (see the module docstring).

    Args:
        app: the ASGI app.  state: the EmulatorState.  origin: "api" or "storage".
    """

    def __init__(self, app, state, origin):
        self.app = app
        self.state = state
        self.origin = origin

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        state, config = self.state, self.state.config
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        entry = {
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "origin": self.origin,
            "status": None,
            "has_authorization": "authorization" in headers,
            "range": headers.get("range"),
            "bytes": 0,
        }
        state.log.append(entry)
        extra = []

        async def logged_send(message):
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-tone3000-deprecations":
                        entry["deprecations"] = value.decode("latin-1")
                if extra:
                    message = dict(message, headers=list(message.get("headers", [])) + extra)
            elif message["type"] == "http.response.body":
                entry["bytes"] += len(message.get("body", b""))
            await send(message)

        if config.delay_ms:
            await asyncio.sleep(config.delay_ms / 1000.0)
        is_api = scope["path"].startswith("/api/")
        app = self.app
        if (is_api or self.origin == "storage") and config.fail_5xx > 0:
            config.fail_5xx -= 1
            app = self._unavailable()
        elif is_api and self.origin == "api" and config.rate_limit > 0:
            decision = state.limiter.check(_client_key(scope, headers), config.rate_limit, config.rate_window,
                                           config.retry_after)
            extra = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]
            if not decision.allowed:
                app = JSONResponse({"error": "rate_limited",
                                    "message": "Too many requests: %d per %d s. Retry after %d s."
                                    % (config.rate_limit, config.rate_window, decision.retry_after)}, 429)
        try:
            await app(scope, receive, logged_send)
        except ConnectionCut:
            entry["cut"] = True
            raise

    def _unavailable(self):
        headers = {"Retry-After": "1"}
        if self.origin == "storage":
            return s3_error(503, "SlowDown", "Please reduce your request rate.", headers)
        return JSONResponse({"error": "service_unavailable", "message": "The service is temporarily unavailable"},
                            503, headers=headers)
