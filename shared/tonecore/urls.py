"""URLs without urllib (MicroPython has none): encoding, queries, splitting, joining."""

from .compat import to_bytes
from .errors import UsageError

# RFC 3986 unreserved characters are never escaped.
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_HEX = b"0123456789ABCDEF"
DEFAULT_PORTS = {"http": 80, "https": 443}


def quote(text, safe=""):
    """Percent-encode `text` (str or bytes) as UTF-8; characters in `safe` stay as they are.

    quote("http://a/b?c=d") == "http%3A%2F%2Fa%2Fb%3Fc%3Dd"
    """
    safe_bytes = to_bytes(safe)
    out = bytearray()  # one buffer, not a string per character (little heap on a pedal)
    for byte in to_bytes(text):
        if byte in _UNRESERVED or byte in safe_bytes:
            out.append(byte)
        else:
            out.append(37)  # "%"
            out.append(_HEX[byte >> 4])
            out.append(_HEX[byte & 15])
    return out.decode()


def unquote(text, plus=False):
    """Decode %XX escapes (and '+' as space when `plus`); malformed escapes stay literal."""
    data = to_bytes(text)
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        byte = data[i]
        if byte == 37 and i + 2 < n and _is_hex(data[i + 1]) and _is_hex(data[i + 2]):
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(32 if (plus and byte == 43) else byte)
        i += 1
    return bytes(out).decode("utf-8")


def shown(url):
    """`url` as it may appear in a message: no query or fragment (signed URLs carry
    their secret there), and at most 120 characters."""
    text = str(url).split("#", 1)[0]
    if "?" in text:
        text = text.split("?", 1)[0] + "?..."
    return text if len(text) <= 120 else text[:117] + "..."


def _is_hex(byte):
    return (48 <= byte <= 57) or (65 <= byte <= 70) or (97 <= byte <= 102)


def urlencode(pairs):
    """Query string from (name, value) pairs or a dict; None values are left out.

    Names are sorted for dicts so the bytes are stable on both runtimes.
    """
    if isinstance(pairs, dict):
        pairs = sorted(pairs.items())
    parts = []
    for name, value in pairs:
        if value is None:
            continue
        if value is True or value is False:
            value = "true" if value else "false"
        parts.append(quote(str(name)) + "=" + quote(str(value)))
    return "&".join(parts)


def parse_query(query):
    """Dict of decoded query parameters ('+' is a space); the last duplicate wins."""
    result = {}
    if query.startswith("?"):
        query = query[1:]
    for part in query.split("&"):
        if not part:
            continue
        if "=" in part:
            name, value = part.split("=", 1)
        else:
            name, value = part, ""
        result[unquote(name, True)] = unquote(value, True)
    return result


class Url:
    """A split absolute http(s) URL.

    Attributes: scheme ('http'|'https'), host (lower case, IPv6 without brackets),
    port (int, default filled in), path (starts with '/'), query (without '?', may be '').
    """

    def __init__(self, scheme, host, port, path, query):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query = query

    @property
    def origin(self):
        """(scheme, host, port): what must match for credentials to be sent."""
        return (self.scheme, self.host, self.port)

    @property
    def netloc(self):
        host = "[" + self.host + "]" if ":" in self.host else self.host
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return host
        return host + ":" + str(self.port)

    @property
    def target(self):
        """The request target for an HTTP/1.1 request line: path plus query."""
        return self.path + ("?" + self.query if self.query else "")

    def __str__(self):
        return self.scheme + "://" + self.netloc + self.target


def split_url(url):
    """Split an absolute http(s) URL.

    Raises:
        UsageError: not an absolute http/https URL, or a bad port.
    """
    if not isinstance(url, str) or "://" not in url:
        raise UsageError("not an absolute URL: %r" % (url,))
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UsageError("unsupported URL scheme %r (use http or https)" % scheme)
    # The fragment never goes on the wire.
    if "#" in rest:
        rest = rest.split("#", 1)[0]
    cut = len(rest)
    for sep in "/?":
        at = rest.find(sep)
        if 0 <= at < cut:
            cut = at
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        raise UsageError("URLs with credentials are not supported: %s://…" % scheme)
    host, port = _split_authority(authority, url)
    if tail.startswith("?") or not tail:
        tail = "/" + tail
    if "?" in tail:
        path, query = tail.split("?", 1)
    else:
        path, query = tail, ""
    return Url(scheme, host, port if port is not None else DEFAULT_PORTS[scheme], path, query)


def _split_authority(authority, url):
    port = None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise UsageError("bad IPv6 host in URL: %s" % shown(url))
        host = authority[1:end]
        rest = authority[end + 1 :]
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise UsageError("bad host in URL: %s" % shown(url))
    elif ":" in authority:
        host, port = authority.rsplit(":", 1)
    else:
        host = authority
    if not host:
        raise UsageError("URL has no host: %s" % shown(url))
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError("bad port in URL: %s" % shown(url))
        port = int(port)
    return host.lower(), port


def join(base, ref):
    """Resolve `ref` (e.g. a Location header) against the absolute URL `base`."""
    ref = ref.strip()
    if "://" in ref.split("?", 1)[0]:
        return str(split_url(ref))
    b = split_url(base)
    if ref.startswith("//"):
        return str(split_url(b.scheme + ":" + ref))
    if ref.startswith("/"):
        return b.scheme + "://" + b.netloc + ref
    if ref.startswith("?"):
        return b.scheme + "://" + b.netloc + b.path + ref
    if not ref:
        return str(b)
    directory = b.path[: b.path.rfind("/") + 1]
    return b.scheme + "://" + b.netloc + _remove_dots(directory + ref)


def _remove_dots(path):
    query = ""
    if "?" in path:
        path, query = path.split("?", 1)
        query = "?" + query
    out = []
    for seg in path.split("/")[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    if path.endswith("/.") or path.endswith("/.."):
        out.append("")
    return "/" + "/".join(out) + query


def add_query(url, pairs):
    """`url` with the encoded `pairs` appended to its query string."""
    extra = urlencode(pairs)
    if not extra:
        return url
    fragment = ""
    if "#" in url:
        url, fragment = url.split("#", 1)
        fragment = "#" + fragment
    return url + ("&" if "?" in url else "?") + extra + fragment
