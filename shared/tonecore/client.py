"""Calls: generators that yield steps for an adapter and return a result.

The core does no I/O.  Each API call is a generator that yields *steps* and receives
their results; an adapter (httpx on the host, sockets on the pedal) performs them:

    Request            send it; send back a Response (body read, unless .stream)
    Sleep(ms)          wait; send back None
    Persist(tokens)    store the tokens atomically (None: delete them); send back None
    Body(...)          stream a download body into the sink; send back None
    Wait(session)      another caller's refresh of `session` is in flight: wait until
                       `session.refreshing` is False (or a while); send back None

When a step fails, the adapter throws the exception into the generator (`gen.throw`),
so the core decides what is retried.  `Driver.run` (blocking) and `Driver.run_async`
(asyncio) are that loop, written once; adapters subclass Driver and implement the steps.  All policy - refresh before expiry and on 401, single
refresh, pacing under the rate limit, 429/503 back-off, redirects, download resume -
lives here once and is shared by the pedal and the host.
"""

from .errors import (
    ApiError,
    Forbidden,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    SignInError,
    SignInRequired,
    TransportError,
    UsageError,
)
from .http import Request
from .ratelimit import retry_after_ms
from .dialect import CURRENT
from .records import Model, Page, Pager, Tone, User
from .redirect import is_redirect, next_request
from .urls import split_url, urlencode

MAX_429_RETRIES = 4
MAX_5XX_RETRIES = 2
RETRYABLE_5XX = (502, 503, 504)
TONE_LISTS = ("created", "favorited")  # the seed's v1
TODAYS_TONE_LISTS = ("created", "favorited", "downloaded", "trending", "latest")


class Sleep:
    """Step: wait `ms` milliseconds."""

    def __init__(self, ms):
        self.ms = ms


class Persist:
    """Step: store `tokens` atomically before they are used (None: remove them)."""

    def __init__(self, tokens):
        self.tokens = tokens


class Body:
    """Step: copy `response`'s body into `sink` (truncated first when `restart`).

    For every chunk the adapter calls `sink.write(chunk)` then `plan.feed(chunk)`; when the
    body ends it calls `plan.body_ended()`; it always closes the response.
    """

    def __init__(self, response, plan, sink, restart):
        self.response = response
        self.plan = plan
        self.sink = sink
        self.restart = restart


class Wait:
    """Step: another caller is refreshing `session`; wait for `session.refreshing` to
    clear (a bounded wait is fine: the call checks again)."""

    def __init__(self, session):
        self.session = session


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Driver:
    """Runs call generators; subclasses perform the steps.

    One stepping loop (`_drive`) serves both kinds of adapter:

        run(call)              a blocking driver (the host's httpx): its step methods
                               return their result
        await run_async(call)  an asyncio driver (the pedal's sockets): its step methods
                               are coroutines

    Either way a failed step is thrown into the call (which decides: retry, map or
    re-raise), and a call that is abandoned (KeyboardInterrupt, SystemExit, a task
    cancelled) is closed so its `finally` blocks run: a refresh in flight is released
    and waiting callers go on.

    `lock` (a context manager) is held while the generator runs, never during I/O, so
    several threads may drive calls on one Client.
    """

    lock = _NoLock()

    def run(self, call):
        """Drive `call` to completion and return its result (or raise its error)."""
        try:
            # Nothing is awaited for a blocking driver, so one send runs the whole call
            # and the coroutine ends with the call's result.
            self._drive(call, False).send(None)
        except StopIteration as stop:
            return stop.value

    async def run_async(self, call):
        """Drive `call` with a driver whose step methods are coroutines."""
        return await self._drive(call, True)

    async def _drive(self, call, awaiting):
        value = None
        error = None
        try:
            while True:
                try:
                    with self.lock:
                        if error is not None:
                            step = call.throw(error)
                        else:
                            step = call.send(value)
                except StopIteration as stop:
                    return stop.value
                value = None
                error = None
                try:
                    value = self.perform(step)
                    if awaiting:
                        value = await value
                except Exception as exc:  # the call decides: retry, map or re-raise
                    error = exc
        finally:
            with self.lock:
                call.close()

    def perform(self, step):
        """The step method's result for `step` (a coroutine, for an asyncio driver)."""
        if isinstance(step, Request):
            return self.send(step)
        if isinstance(step, Sleep):
            return self.sleep_ms(step.ms)
        if isinstance(step, Persist):
            return self.persist(step.tokens)
        if isinstance(step, Body):
            return self.stream_body(step)
        if isinstance(step, Wait):
            return self.wait_for_refresh(step.session)
        raise TypeError("unknown step %r" % (step,))

    def send(self, request):
        raise NotImplementedError

    def sleep_ms(self, ms):
        raise NotImplementedError

    def persist(self, tokens):
        """Default: keep tokens in memory only."""

    def stream_body(self, step):
        raise NotImplementedError

    def wait_for_refresh(self, session):
        raise ProtocolError("a refresh is in flight in another call; this driver cannot wait for it")


def raise_for_status(response, what):
    """Raise the ApiError subclass for an error `response`; `what` names the thing asked for."""
    status = response.status
    if status < 400:
        return
    message = response.error_message("")
    detail = (": " + message) if message else ""
    if status == 403:
        raise Forbidden("%s: access denied (HTTP 403)%s" % (what, detail), status)
    if status == 404:
        raise NotFound("%s: not found (HTTP 404)%s" % (what, detail), status)
    if status == 429:
        raise RateLimited(
            "%s: rate limited by TONE3000 (HTTP 429)%s" % (what, detail),
            status,
            retry_after_ms(response.header("retry-after"), 0) // 1000 or None,
        )
    if status == 401:
        raise SignInRequired("%s: TONE3000 did not accept the session (HTTP 401); sign in again" % what)
    if status >= 500:
        raise ServerError("%s: TONE3000 failed (HTTP %d)%s" % (what, status, detail), status)
    raise ApiError("%s: HTTP %d%s" % (what, status, detail), status)


class Client:
    """The TONE3000 API as call generators.

    Args:
        api_base: e.g. "https://www.tone3000.com/api/v1".
        session: a Session (holds tokens and the sign-in flow).
        clock_ms: function returning monotonic milliseconds (never wraps).
        limiter: a RateLimiter, or None for no client-side pacing.
        dialect: how the service spells its API (tonecore.dialect; default today's).
    """

    def __init__(self, api_base, session, clock_ms, limiter=None, dialect=None):
        self.api_base = api_base.rstrip("/")
        self.dialect = dialect or CURRENT
        self._api_origin = split_url(self.api_base).origin
        self.session = session
        self.clock_ms = clock_ms
        self.limiter = limiter
        self.refresh_count = 0
        self.max_429_retries = MAX_429_RETRIES
        self.max_5xx_retries = MAX_5XX_RETRIES

    # -- building blocks ---------------------------------------------------------

    def url(self, path, query=None):
        url = self.api_base + path
        if query:
            url += "?" + urlencode(query)
        return url

    def call(self, method, url, headers=None, body=None, stream=False, auth=True):
        """Send one logical request; returns the final Response (any status).

        Handles: refresh before expiry, one refresh + one retry on 401, pacing,
        429 and 502/503/504 back-off, and redirects through the redirect policy.

        The token goes only to the API's own origin (scheme, host and port): a URL on
        any other origin - a `model_url` a server named, over http or on another host -
        is requested without it (file storage signs its own URLs).
        """
        base = Request(method, url, headers, body, stream)
        if auth and not self._api_url(url):
            auth = False
        retried_401 = False
        throttled = 0
        failed_5xx = 0
        while True:
            generation = None
            request = base
            if auth:
                yield from self._ensure_fresh()
                generation = self.session.generation
                request = base.copy()
                request.headers["authorization"] = self.session.tokens.authorization()
            yield from self._pace(request.url)
            response = yield request
            hops = 0
            while is_redirect(response):
                follow = next_request(request, response, hops)
                hops += 1
                response.close()
                request = follow
                yield from self._pace(request.url)
                response = yield request
            status = response.status
            if status == 401 and "authorization" in request.headers:
                response.close()
                if retried_401:
                    yield from self._sign_out()
                    raise SignInRequired("TONE3000 refused the session even after refreshing it; sign in again")
                retried_401 = True
                yield from self._refresh_after_401(generation)
                continue
            if status == 429 and throttled < self.max_429_retries:
                throttled += 1
                delay = retry_after_ms(response.header("retry-after"))
                if self.limiter is not None:
                    self.limiter.block_for(self.clock_ms(), delay)
                response.close()
                yield Sleep(delay)
                continue
            if status in RETRYABLE_5XX and method == "GET" and failed_5xx < self.max_5xx_retries:
                failed_5xx += 1
                delay = retry_after_ms(response.header("retry-after"), 500 * failed_5xx, 30000)
                response.close()
                yield Sleep(delay)
                continue
            return response

    def get_json(self, path, query=None, what=None):
        """GET an API path and return its parsed JSON, raising ApiError on error statuses."""
        response = yield from self.call("GET", self.url(path, query), {"accept": "application/json"})
        raise_for_status(response, what or path)
        return response.json()

    # -- sign-in -----------------------------------------------------------------

    def sign_in(self, callback):
        """Exchange a sign-in callback (URL, query, dict or bare api_key) for tokens.

        Returns:
            the new Tokens (already persisted and in use).
        Raises:
            SignInError: the callback has an error/no key, or the key was refused.
        """
        request = self.session.flow.exchange_request(callback)
        yield from self._pace()
        response = yield request
        tokens = self.session.flow.parse_tokens(response, self.clock_ms())
        yield Persist(tokens)
        self.session.adopt(tokens)
        return tokens

    def sign_out(self):
        """Forget the tokens locally (the v1 API has no revoke endpoint)."""
        yield from self._sign_out()

    # -- API ---------------------------------------------------------------------

    def user(self):
        """GET /user -> User."""
        data = yield from self.get_json("/user", None, "your TONE3000 profile")
        return User(data)

    def tones_page(self, which, pager):
        """Next page of /tones/<which> (created, favorited; today's service also
        downloaded, trending, latest) -> Page of Tone."""
        lists = TODAYS_TONE_LISTS if self.dialect.oauth else TONE_LISTS
        if which not in lists:
            raise ValueError("which must be one of %s" % (lists,))
        data = yield from self.get_json("/tones/" + which, pager.query(self.dialect.page_size), which + " tones")
        page = Page(data, Tone)
        pager.advance(page)
        return page

    def models_page(self, tone_id, pager, architecture=None):
        """Next page of the models of a tone -> Page of Model.

        Args:
            architecture: "1", "2" or "custom" (today's service; one value a request);
                None: the service's default set (A1, custom and non-NAM; no A2).
        """
        query = [(self.dialect.tone_id, tone_id)] + pager.query(self.dialect.page_size)
        if architecture is not None and self.dialect.architectures:
            query.append(("architecture", architecture))
        data = yield from self.get_json("/models", query, "models of tone %s" % tone_id)
        page = Page(data, Model)
        pager.advance(page)
        return page

    def all_tones(self, which, page_size=100):
        """Every tone of a list (walks all pages) -> list of Tone."""
        return (yield from self._every(self.tones_page, which, page_size))

    def all_models(self, tone_id, page_size=100, architecture=None):
        """Every model of a tone (of one `architecture`, see models_page) -> list of Model."""
        return (yield from self._every(lambda key, pager: self.models_page(key, pager, architecture), tone_id,
                                       page_size))

    def _every(self, page_call, key, page_size):
        """All items of a listing: `page_call(key, pager)` page after page."""
        pager = Pager(page_size)
        items = []
        while not pager.done:
            page = yield from page_call(key, pager)
            items.extend(page.items)
        return items

    def download(self, plan, sink, what=None):
        """Download `plan.url` into `sink`, resuming and retrying as the plan says.

        `plan` is a tonecore.download.DownloadPlan (this module needs only its
        interface, so a core that never downloads never loads that module).

        Returns:
            the SHA-256 hex of the complete, verified file.
        Raises:
            Forbidden / NotFound / SignInRequired: not retried.
            DownloadError: too many failed attempts; IntegrityError: bad bytes.
        """
        what = what or plan.filename
        while True:
            try:
                response = yield from self.call("GET", plan.url, plan.request_headers(), stream=True)
                if response.status >= 400 and response.status != 416:
                    response.close()
                    if response.status >= 500:
                        raise TransportError("%s: TONE3000 failed (HTTP %d)" % (what, response.status))
                    raise_for_status(response, what)
                action = plan.begin(response)
                if action == plan.COMPLETE:
                    response.close()
                    break
                if action == plan.AGAIN:
                    response.close()
                    raise ProtocolError("%s: the server could not serve the range; starting over" % what)
                yield Body(response, plan, sink, action == plan.RESTART)
                break
            except (TransportError, ProtocolError) as error:
                delay = plan.failed(error)
                yield Sleep(delay)
        return plan.finish()

    # -- session upkeep ------------------------------------------------------------

    def _pace(self, url=None):
        """Wait until the limiter allows one more request, and count it.  Only requests
        to the API's origin count (the limit is the API's): a redirect to file storage
        on another origin is not paced."""
        limiter = self.limiter
        if limiter is None:
            return
        if url is not None and self._other_origin(url):
            return
        while True:
            delay = limiter.delay_ms(self.clock_ms())
            if delay <= 0:
                break
            yield Sleep(delay)
        limiter.record(self.clock_ms())

    def _other_origin(self, url):
        """True for a URL outside the API's origin (for pacing: one that does not parse
        is paced, the adapter refuses it anyway)."""
        try:
            return split_url(url).origin != self._api_origin
        except UsageError:
            return False

    def _api_url(self, url):
        """True only for a URL on the API's own origin: where the token may go."""
        try:
            return split_url(url).origin == self._api_origin
        except UsageError:
            return False

    def _settled(self):
        """Wait while another caller's refresh is in flight; SignInRequired when signed out."""
        session = self.session
        while True:
            if session.tokens is None:
                raise SignInRequired("not signed in to TONE3000")
            if not session.refreshing:
                return
            yield Wait(session)

    def _ensure_fresh(self):
        yield from self._settled()
        if self.session.tokens.refresh_due(self.clock_ms()):
            yield from self._refresh()

    def _refresh_after_401(self, generation):
        yield from self._settled()
        if self.session.generation == generation:
            yield from self._refresh()
        # else another caller refreshed already: just retry

    def _refresh(self):
        session = self.session
        session.refreshing = True
        try:
            request = session.flow.refresh_request(session.tokens)
            yield from self._pace()
            response = yield request
            try:
                tokens = session.flow.parse_tokens(response, self.clock_ms())
            except (SignInError, ProtocolError):
                yield from self._sign_out()
                raise SignInRequired("the TONE3000 session has expired; sign in again")
            self.refresh_count += 1
            yield Persist(tokens)  # rotating refresh tokens: store before first use
            session.adopt(tokens)
        finally:
            session.refreshing = False

    def _sign_out(self):
        self.session.clear()
        yield Persist(None)
