"""Request and Response: the plain values that cross the core/adapter boundary.

Header names are always lower case.  A Response either carries its whole `body`
(bytes) or, for streamed downloads, a `stream` the adapter reads from; adapters may
subclass Response to add `close()`.
"""

from .compat import json, to_str
from .errors import ProtocolError
from .urls import shown


class Request:
    """One HTTP request to send.

    Attributes:
        method, url: what to send where (url is absolute).
        headers: dict of lower-case name -> value.
        body: bytes or None.
        stream: True when the adapter must not read the body eagerly (downloads).
    """

    def __init__(self, method, url, headers=None, body=None, stream=False):
        self.method = method
        self.url = url
        self.headers = dict(headers) if headers else {}
        self.body = body
        self.stream = stream

    def copy(self, **changes):
        """A copy with some attributes replaced (headers are copied, not shared)."""
        new = Request(self.method, self.url, self.headers, self.body, self.stream)
        for name in changes:
            setattr(new, name, changes[name])
        return new

    def __repr__(self):
        # Never show header values: they may hold a token.
        return "<Request %s %s>" % (self.method, shown(self.url))


def json_request(method, url, payload, headers=None):
    """A request with a JSON body and the matching Content-Type."""
    hdrs = {"content-type": "application/json", "accept": "application/json"}
    if headers:
        hdrs.update(headers)
    return Request(method, url, hdrs, json.dumps(payload).encode(), False)


class Response:
    """One HTTP response as the adapter received it.

    Attributes:
        status: int.
        headers: dict of lower-case name -> value (repeated headers joined by ', ').
        body: bytes, or None when streamed.
        url: the URL that produced it (after redirects).
    """

    def __init__(self, status, headers=None, body=None, url=None):
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.url = url

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        """The body parsed as JSON.

        Raises:
            ProtocolError: empty or malformed JSON.
        """
        if not self.body:
            raise ProtocolError("expected a JSON body from %s, got none (HTTP %d)" % (shown(self.url), self.status))
        try:
            return json.loads(to_str(self.body))
        except (ValueError, UnicodeError, RuntimeError, MemoryError):
            # RuntimeError: too deeply nested (CPython's RecursionError, MicroPython's
            # "maximum recursion depth"); MemoryError: the same on a small heap.
            raise ProtocolError("malformed JSON from %s (HTTP %d)" % (shown(self.url), self.status))

    def error_message(self, default):
        """The human message of an error body ({"message"} or {"error"}), else `default`."""
        try:
            data = self.json()
        except ProtocolError:
            return default
        if isinstance(data, dict):
            for key in ("message", "error_description", "error"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return value
                if isinstance(value, dict) and isinstance(value.get("message"), str):
                    return value["message"]
        return default

    def close(self):
        """Release the connection (adapters with streams override this)."""

    def __repr__(self):
        return "<Response %d %s>" % (self.status, shown(self.url))
