"""Test and inspection endpoints under /_emulator (never rate limited, never logged).

    GET  /_emulator/outbox        codes and links "emailed", oldest first
    GET  /_emulator/requests      the request log (last 500)
    GET  /_emulator/config        the current EmulatorConfig (+ base_url, storage_url)
    POST /_emulator/config        change fields: {"rate_limit": 3, "cut_queue": [1234]}
    POST /_emulator/reset         clear log, outbox, faults, rate-limit windows
    GET  /_emulator/models        every model: id, tone_id, filename, size class, platform
    GET  /_emulator/models/{id}   {"id", "size", "sha256", "filename", ...} of the file
    POST /_emulator/models/{id}/update   publish a new version: other bytes, updated_at now
"""

import datetime
import json

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route

from .catalogue import iso

RATE_FIELDS = ("rate_limit", "rate_window", "retry_after")


def _state(request):
    return request.app.state.emulator


def _config_json(state):
    data = state.config.to_json()
    data.update(base_url=state.base_url, storage_url=state.storage_url)
    return data


async def outbox(request):
    return JSONResponse(_state(request).outbox)


async def requests(request):
    return JSONResponse(list(_state(request).log))


async def get_config(request):
    return JSONResponse(_config_json(_state(request)))


async def set_config(request):
    state = _state(request)
    try:
        changed = state.config.apply(json.loads(await request.body() or b"{}"))
    except ValueError as exc:  # also malformed JSON
        return JSONResponse({"error": "invalid_config", "message": str(exc)}, 400)
    if any(name in RATE_FIELDS for name in changed):
        state.limiter.reset()
    return JSONResponse(_config_json(state))


async def reset(request):
    state = _state(request)
    state.reset()
    return JSONResponse(_config_json(state))


async def list_models(request):
    catalogue = _state(request).catalogue
    return JSONResponse([{"id": m.id, "tone_id": m.tone_id, "filename": m.filename, "size": m.size,
                          "platform": m.platform} for m in catalogue.models.values()])


async def model_file(request):
    state = _state(request)
    model = state.catalogue.models.get(request.path_params["model_id"])
    if model is None:
        return JSONResponse({"error": "not_found", "message": "No such model"}, 404)
    file = await run_in_threadpool(state.files.get, model)
    return JSONResponse({"id": model.id, "size": file.size, "sha256": file.sha256, "filename": model.filename,
                         "etag": file.etag, "content_type": file.content_type, "tone_id": model.tone_id})


async def update_model(request):
    state = _state(request)
    model = state.catalogue.models.get(request.path_params["model_id"])
    if model is None:
        return JSONResponse({"error": "not_found", "message": "No such model"}, 404)
    model.version += 1
    model.updated_at = iso(datetime.datetime.now(datetime.timezone.utc))
    state.files.forget(model.id)
    return await model_file(request)


def routes():
    return [
        Route("/_emulator/outbox", outbox, methods=["GET"]),
        Route("/_emulator/requests", requests, methods=["GET"]),
        Route("/_emulator/config", get_config, methods=["GET"]),
        Route("/_emulator/config", set_config, methods=["POST"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/models", list_models, methods=["GET"]),
        Route("/_emulator/models/{model_id:int}", model_file, methods=["GET"]),
        Route("/_emulator/models/{model_id:int}/update", update_model, methods=["POST"]),
    ]
