"""The two ASGI apps: the TONE3000 API origin and the storage origin.

API (JSON; errors are {"error": "<code>", "message": "<text>"}):
    POST /api/v1/auth/session            {"api_key"} -> Session (any Content-Type)
    POST /api/v1/auth/session/refresh    {"refresh_token", "access_token"} -> Session
    GET  /api/v1/user                    -> User                                  (Bearer)
    GET  /api/v1/tones/created|favorited|downloaded|trending|latest
                                         ?page&page_size -> PaginatedResponse<Tone> (Bearer)
    GET  /api/v1/tones/{id}              -> Tone                                   (Bearer)
    GET  /api/v1/models ?tone_id&page&page_size[&architecture] -> PaginatedResponse<Model>
    GET  /api/v1/models/{id}             -> Model                                  (Bearer)
    GET  /api/v1/models/{id}/download/{filename} -> the file, or 302 to storage    (Bearer)
plus the OAuth endpoints (`oauth.py`), the sign-in pages (`signin.py`), the test
endpoints under /_emulator (`control.py`) and an index page at /.

Dialects (config `dialect`): "v1" answers exactly as the seed document (pageSize,
totalPages, Tone.platform, no architecture_version, no A2 models); "current" answers
as today's service (page_size, total_pages, Tone.format, gear amp-cab,
Model.architecture_version).  Both take either spelling of the query parameters
(pageSize/page_size, toneId/tone_id); "current" names the legacy ones a request used
in an `X-Tone3000-Deprecations` header.  `architecture` ("1", "2", "custom"; one value)
filters models; without it a listing is the legacy set: A1, custom and non-NAM, no A2.
"""

import json
import math

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.routing import Route

from . import control, file_serving, pages
from .config import EmulatorConfig
from .middleware import EmulatorMiddleware
from .oauth import OAuth
from .signin import SignIn
from .state import EmulatorState
from .credentials import TokenError

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


def error(status, code, message, headers=None):
    """A JSON error response."""
    return JSONResponse({"error": code, "message": message}, status, headers=headers)


class ApiError(Exception):
    """Raised by helpers; turned into `error(...)` by the handler wrapper."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.response = error(status, code, message, headers)


def _handler(func):
    async def endpoint(request):
        try:
            return await func(request, request.app.state.emulator)
        except ApiError as exc:
            return exc.response

    endpoint.__name__ = func.__name__
    return endpoint


async def _json_body(request):
    """The request body as a JSON object, whatever its Content-Type."""
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_request", "The body must be a JSON object")
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object")
    return data


def _bearer_user(request, state):
    """The signed-in User of a request (401 with WWW-Authenticate otherwise)."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_token", "Missing Authorization: Bearer <access_token>", challenge)
    try:
        user_id = state.sessions.authenticate(token.strip())
    except TokenError as exc:
        raise ApiError(401, exc.code, str(exc), challenge)
    return state.catalogue.users[user_id]


LEGACY_PARAMS = {"page_size": "pageSize", "tone_id": "toneId"}
LIST_LIMIT = 100  # trending and latest are bounded lists: at most this many tones
ARCHITECTURES = ("1", "2", "custom")


def _param(request, name):
    """A query parameter under today's name or its legacy one (noted for the deprecation
    header); None when absent."""
    value = request.query_params.get(name)
    legacy = LEGACY_PARAMS.get(name)
    if value is None and legacy is not None:
        value = request.query_params.get(legacy)
        if value is not None:
            request.state.deprecated = getattr(request.state, "deprecated", []) + [legacy]
    return value


def _json(request, state, data, status=200, headers=None):
    """A JSON response, with X-Tone3000-Deprecations when the request used legacy
    parameter names and the emulator speaks today's dialect."""
    headers = dict(headers or {})
    deprecated = getattr(request.state, "deprecated", None)
    if deprecated and state.config.dialect != "v1":
        headers["X-Tone3000-Deprecations"] = ", ".join(sorted(set(deprecated)))
    return JSONResponse(data, status, headers=headers)


def _int_param(request, name, default):
    raw = _param(request, name)
    if raw is None:
        if default is None:
            raise ApiError(400, "invalid_parameter", "The %s parameter is required" % name)
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ApiError(400, "invalid_parameter", "%s must be an integer >= 1" % name)
    return int(raw)


def _paginated(request, state, items, render):
    """A PaginatedResponse of `items` for the request's page and page size."""
    page = _int_param(request, "page", 1)
    size = min(_int_param(request, "page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    chunk = items[(page - 1) * size: page * size]
    data = [render(item) for item in chunk]
    pages = math.ceil(len(items) / size)
    if state.config.dialect == "v1":
        body = {"data": data, "page": page, "pageSize": size, "total": len(items), "totalPages": pages}
    else:
        body = {"data": data, "page": page, "page_size": size, "total": len(items), "total_pages": pages}
    return _json(request, state, body)


def _tone_json(state):
    dialect = state.config.dialect
    return lambda tone: tone.to_json(dialect)


def _architecture(request, state):
    """The `architecture` filter of a models request (None: the legacy set)."""
    value = request.query_params.get("architecture")
    if value is None or state.config.dialect == "v1":
        return None
    if value not in ARCHITECTURES:
        raise ApiError(400, "invalid_parameter", "architecture must be one of %s (one value)" % ", ".join(ARCHITECTURES))
    return value


def _visible_tone(state, user, tone_id):
    tone = state.catalogue.tones.get(tone_id)
    if tone is None or not state.catalogue.can_view(user.id, tone):
        raise ApiError(404, "not_found", "Tone %d not found" % tone_id)
    return tone


# -- endpoints ----------------------------------------------------------------------

@_handler
async def create_session(request, state):
    body = await _json_body(request)
    if not isinstance(body.get("api_key"), str) or not body["api_key"]:
        raise ApiError(400, "invalid_request", "api_key is required")
    try:
        return JSONResponse(state.sessions.exchange(body["api_key"]), headers={"Cache-Control": "no-store"})
    except TokenError as exc:
        raise ApiError(401, exc.code, str(exc))


@_handler
async def refresh_session(request, state):
    body = await _json_body(request)
    refresh, access = body.get("refresh_token"), body.get("access_token")
    if not isinstance(refresh, str) or not refresh or not (access is None or isinstance(access, str)):
        raise ApiError(400, "invalid_request", "refresh_token (and access_token) must be strings")
    try:
        return JSONResponse(state.sessions.refresh(refresh, access), headers={"Cache-Control": "no-store"})
    except TokenError as exc:
        raise ApiError(401, exc.code, str(exc))


@_handler
async def user(request, state):
    return _json(request, state, _bearer_user(request, state).to_json())


@_handler
async def tones_created(request, state):
    me = _bearer_user(request, state)
    return _paginated(request, state, state.catalogue.created_by(me.id), _tone_json(state))


@_handler
async def tones_favorited(request, state):
    me = _bearer_user(request, state)
    return _paginated(request, state, state.catalogue.favorited_by(me.id), _tone_json(state))


def _today_only(state):
    if state.config.dialect == "v1":
        raise ApiError(404, "not_found", "No such endpoint")


@_handler
async def tones_downloaded(request, state):
    _today_only(state)
    me = _bearer_user(request, state)
    return _paginated(request, state, state.catalogue.downloaded_by(me.id), _tone_json(state))


@_handler
async def tones_trending(request, state):
    _today_only(state)
    me = _bearer_user(request, state)
    tones = [t for t in state.catalogue.tones.values() if state.catalogue.can_view(me.id, t) and t.is_public]
    tones.sort(key=lambda t: (-t.downloads_count, t.id))
    return _paginated(request, state, tones[:LIST_LIMIT], _tone_json(state))


@_handler
async def tones_latest(request, state):
    _today_only(state)
    me = _bearer_user(request, state)
    tones = [t for t in state.catalogue.tones.values() if state.catalogue.can_view(me.id, t) and t.is_public]
    tones.sort(key=lambda t: (t.created_at, t.id), reverse=True)
    return _paginated(request, state, tones[:LIST_LIMIT], _tone_json(state))


@_handler
async def tone(request, state):
    _today_only(state)
    me = _bearer_user(request, state)
    return _json(request, state, _visible_tone(state, me, request.path_params["tone_id"]).to_json(state.config.dialect))


@_handler
async def models(request, state):
    me = _bearer_user(request, state)
    tone = _visible_tone(state, me, _int_param(request, "tone_id", None))
    origin = state.api_origin(request)
    dialect = state.config.dialect
    return _paginated(request, state, tone.listed_models(_architecture(request, state)),
                      lambda m: m.to_json(origin, dialect))


@_handler
async def model(request, state):
    _today_only(state)
    me = _bearer_user(request, state)
    found = state.catalogue.models.get(request.path_params["model_id"])
    if found is None:
        raise ApiError(404, "not_found", "Model not found")
    _visible_tone(state, me, found.tone_id)
    return _json(request, state, found.to_json(state.api_origin(request), state.config.dialect))


@_handler
async def download(request, state):
    me = _bearer_user(request, state)
    model = state.catalogue.models.get(request.path_params["model_id"])
    if model is None or model.filename != request.path_params["filename"]:
        raise ApiError(404, "not_found", "Model not found")
    tone = _visible_tone(state, me, model.tone_id)
    if not state.catalogue.can_download(me.id, tone):
        raise ApiError(403, "forbidden", "Only the tone's owner and users who favorited it may download its models")
    state.catalogue.note_download(me.id, tone.id)
    if state.config.storage_redirect:
        if not state.storage_url:
            raise ApiError(503, "storage_unavailable", "The storage origin is not running")
        return RedirectResponse(file_serving.presigned_url(state, model, request), 302, headers={"Cache-Control": "no-store"})
    return await file_serving.file_response(request, state, model, error)


async def index(request):
    state = request.app.state.emulator
    return HTMLResponse(pages.index_page(state.api_origin(request), state.storage_url))


async def _http_error(request, exc):
    messages = {404: "No such endpoint", 405: "Method not allowed"}
    return error(exc.status_code, "not_found" if exc.status_code == 404 else "method_not_allowed",
                 messages.get(exc.status_code, str(exc.detail)), getattr(exc, "headers", None))


# -- the apps -----------------------------------------------------------------------

def create_app(config=None, state=None):
    """The API origin as a Starlette app.

    Args:
        config: EmulatorConfig (ignored when `state` is given).
        state: an EmulatorState to share with a storage app; default: a new one whose
            absolute URLs come from each request's Host.
    Returns:
        the app; its EmulatorState is `app.state.emulator`.
    """
    state = state or EmulatorState(config or EmulatorConfig())
    file_serving.quiet_cuts()
    routes = [
        Route("/", index, methods=["GET"]),
        Route("/api/v1/auth/session", create_session, methods=["POST"]),
        Route("/api/v1/auth/session/refresh", refresh_session, methods=["POST"]),
        Route("/api/v1/user", user, methods=["GET"]),
        Route("/api/v1/tones/created", tones_created, methods=["GET"]),
        Route("/api/v1/tones/favorited", tones_favorited, methods=["GET"]),
        Route("/api/v1/tones/downloaded", tones_downloaded, methods=["GET"]),
        Route("/api/v1/tones/trending", tones_trending, methods=["GET"]),
        Route("/api/v1/tones/latest", tones_latest, methods=["GET"]),
        Route("/api/v1/tones/{tone_id:int}", tone, methods=["GET"]),
        Route("/api/v1/models", models, methods=["GET"]),
        Route("/api/v1/models/{model_id:int}", model, methods=["GET"]),
        Route("/api/v1/models/{model_id:int}/download/{filename}", download, methods=["GET", "HEAD"]),
    ]
    signin = SignIn(state)
    oauth = OAuth(state, signin)
    routes += signin.routes() + oauth.routes() + control.routes()
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.emulator = state
    app.state.oauth = oauth
    app.add_middleware(EmulatorMiddleware, state=state, origin="api")
    return app


def create_storage_app(state):
    """The storage origin (presigned downloads) sharing `state` with the API app."""
    file_serving.quiet_cuts()
    routes = [Route("/blob/{model_id:int}/{filename}", file_serving.storage_blob, methods=["GET", "HEAD"])]

    async def not_found(request, exc):
        return file_serving.s3_error(exc.status_code, "NoSuchKey" if exc.status_code == 404 else "MethodNotAllowed",
                                  "The specified key does not exist." if exc.status_code == 404 else "Not allowed")

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.emulator = state
    app.add_middleware(EmulatorMiddleware, state=state, origin="storage")
    return app
