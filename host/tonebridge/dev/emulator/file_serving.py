"""Serving model files: Range/If-Range, HEAD, chunked mode, cuts, presigned URLs.

`file_response()` is used by both origins: the API (`/api/v1/models/{id}/download/…`,
Bearer) and the storage origin (`/blob/{id}/{name}?expires=…&sig=…`, no Bearer - and like
S3 it refuses any request that carries an Authorization header).

A cut (config `cut_after` / `cut_queue`) sends exactly N body bytes and then raises
`ConnectionCut` inside the response: uvicorn closes the connection, so the client sees
an incomplete body (fewer bytes than Content-Length, or a chunked body without its last
chunk).  `quiet_cuts()` keeps those deliberate cuts out of uvicorn's error log.
"""

import hashlib
import hmac
import logging
import re
import urllib.parse

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class ConnectionCut(Exception):
    """Raised inside a download body to drop the connection on purpose."""


class _HideCuts(logging.Filter):
    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionCut)


def quiet_cuts():
    """Install (once) a filter that drops uvicorn's error records for ConnectionCut."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideCuts) for f in logger.filters):
        logger.addFilter(_HideCuts())


def plan_range(range_header, if_range, file, enabled):
    """Decide what part of `file` to send.

    Returns:
        (status, start, end): 200 (whole file), 206 (bytes start..end-1) or 416.
        A malformed or multi-range header is ignored (200), as RFC 9110 allows.
    """
    total = file.size
    if not enabled or not range_header:
        return 200, 0, total
    if if_range is not None and if_range.strip() not in (file.etag, file.last_modified):
        return 200, 0, total
    match = _RANGE_RE.match(range_header)
    if match is None or (not match.group(1) and not match.group(2)):
        return 200, 0, total
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        count = int(last)
        if count == 0 or total == 0:
            return 416, 0, 0
        return 206, max(0, total - count), total
    start = int(first)
    end = total if not last else min(int(last) + 1, total)
    if last and int(last) < start:
        return 200, 0, total
    if start >= total:
        return 416, 0, 0
    return 206, start, end


class FileBody:
    """An ASGI response that streams `data[start:end]` in chunks, maybe cut short."""

    def __init__(self, data, start, end, status, headers, chunk_size, cut=None, head=False):
        self.data = data
        self.start = start
        self.end = end
        self.status = status
        self.headers = headers
        self.chunk_size = chunk_size
        self.cut = cut if cut is not None and cut < end - start else None
        self.head = head

    async def __call__(self, scope, receive, send):
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        if self.head:
            await send({"type": "http.response.body", "body": b""})
            return
        view = memoryview(self.data)
        position, stop = self.start, self.end
        if self.cut is not None:
            stop = self.start + self.cut
        while position < stop:
            size = min(self.chunk_size, stop - position)
            await send({"type": "http.response.body", "body": bytes(view[position:position + size]),
                        "more_body": True})
            position += size
        if self.cut is not None:
            raise ConnectionCut("cut after %d body bytes" % self.cut)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def file_response(request, state, model, errors):
    """The download response for `model` (whole file, a range, 416, or HEAD).

    Args:
        errors: function(status, code, message, headers) -> error Response for this origin.
    """
    file = state.files.cached(model.id) or await run_in_threadpool(state.files.get, model)
    config = state.config
    status, start, end = plan_range(request.headers.get("range"), request.headers.get("if-range"), file,
                                    config.range_support)
    headers = {
        "Content-Type": file.content_type,
        "ETag": file.etag,
        "Last-Modified": file.last_modified,
        "Content-Disposition": 'attachment; filename="%s"' % model.filename,
        "Cache-Control": "private, max-age=0",
    }
    if config.range_support:
        headers["Accept-Ranges"] = "bytes"
    if status == 416:
        headers["Content-Range"] = "bytes */%d" % file.size
        return errors(416, "range_not_satisfiable", "The requested range is outside the file (%d bytes)" % file.size,
                      headers)
    if status == 206:
        headers["Content-Range"] = "bytes %d-%d/%d" % (start, end - 1, file.size)
    if not config.chunked:
        headers["Content-Length"] = str(end - start)
    head = request.method == "HEAD"
    cut = None if head else config.next_cut()
    return FileBody(file.data, start, end, status, headers, config.chunk_size, cut, head)


# -- presigned URLs (the storage origin) --------------------------------------------

def _signature(state, model_id, filename, expires):
    message = ("%d:%s:%d" % (model_id, filename, expires)).encode()
    return hmac.new(state.presign_secret, message, hashlib.sha256).hexdigest()


def presigned_url(state, model, request):
    """A storage-origin URL for `model`'s file, valid `presign_ttl` seconds."""
    expires = int(state.now()) + state.config.presign_ttl
    query = urllib.parse.urlencode({"expires": expires, "sig": _signature(state, model.id, model.filename, expires)})
    return "%s/blob/%d/%s?%s" % (state.storage_origin(request), model.id, urllib.parse.quote(model.filename), query)


def check_presigned(state, model_id, filename, params):
    """None if the signature and expiry are good, else a (code, message) S3-style error."""
    expires = params.get("expires", "")
    if not expires.isdigit() or not params.get("sig"):
        return "AccessDenied", "Query-string authentication requires the expires and sig parameters"
    if not hmac.compare_digest(params["sig"], _signature(state, model_id, filename, int(expires))):
        return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided"
    if state.now() > int(expires):
        return "AccessDenied", "Request has expired"
    return None


def s3_error(status, code, message, headers=None):
    """An S3-style XML error body."""
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>\n'
            % (code, message))
    return Response(body, status, headers=headers, media_type="application/xml")


async def storage_blob(request):
    """GET/HEAD /blob/{id}/{filename}?expires&sig on the storage origin."""
    state = request.app.state.emulator
    if "authorization" in request.headers:
        return s3_error(400, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                        "parameter, Signature query string parameter or the Authorization header should be specified")
    model = state.catalogue.models.get(request.path_params["model_id"])
    filename = request.path_params["filename"]
    if model is None or model.filename != filename:
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")
    problem = check_presigned(state, model.id, filename, request.query_params)
    if problem:
        return s3_error(403, *problem)
    return await file_response(request, state, model, lambda status, code, message, headers: s3_error(
        status, "InvalidRange", message, headers))
