"""The redirect policy, stricter than micropython-lib `requests` and safe for tokens.

  * at most MAX_HOPS redirects per call;
  * https -> http is refused (a token or model must never fall back to plain text);
  * Authorization is dropped as soon as scheme, host or port changes, and stays dropped;
  * 303 (and 301/302 after a POST) become GET without a body; 307/308 keep method and body.
"""

from .errors import RedirectError
from .urls import join, shown, split_url

MAX_HOPS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def is_redirect(response):
    return response.status in REDIRECT_STATUSES


def next_request(request, response, hops_done, max_hops=MAX_HOPS):
    """The request to send for a redirect `response` to `request`.

    Args:
        hops_done: redirects already followed in this call.
    Raises:
        RedirectError: too many hops, no Location, or an https->http downgrade.
    """
    if hops_done >= max_hops:
        raise RedirectError("too many redirects (more than %d) starting from %s" % (max_hops, shown(request.url)))
    location = response.header("location")
    if not location:
        raise RedirectError("HTTP %d redirect from %s has no Location" % (response.status, shown(request.url)))
    target = join(request.url, location)
    old = split_url(request.url)
    new = split_url(target)
    if old.scheme == "https" and new.scheme != "https":
        raise RedirectError("refusing a redirect from https to plain http (%s)" % new.netloc)
    headers = dict(request.headers)
    if new.origin != old.origin:
        headers.pop("authorization", None)
        headers.pop("cookie", None)
    method = request.method
    body = request.body
    if response.status == 303 or (response.status in (301, 302) and method == "POST"):
        method = "GET" if method != "HEAD" else "HEAD"
        body = None
        headers.pop("content-type", None)
        headers.pop("content-length", None)
    return request.copy(method=method, url=target, headers=headers, body=body)
