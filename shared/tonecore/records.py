"""Parsers for the API's JSON types, tolerant of extra fields and unknown enum values.

Every record checks the fields a client relies on (ids, names, URLs) when it is made
and raises ProtocolError naming the field when one is missing or of the wrong type;
every other field reads as None when absent or of the wrong type.  Unknown enum values are kept as the raw string (`is_known_*` says
whether we recognise it), so a new platform on the service never breaks a listing.
"""

from .compat import is_int
from .errors import ProtocolError
from .urls import unquote

GEARS = ("amp", "full-rig", "pedal", "outboard", "ir")
PLATFORMS = ("nam", "ir", "aida-x", "aa-snapshot", "proteus")
LICENSES = ("t3k", "cc-by", "cc-by-sa", "cc-by-nc", "cc-by-nc-sa", "cc-by-nd", "cc-by-nc-nd", "cco")
SIZES = ("standard", "lite", "feather", "nano", "custom")
ARCHITECTURES = ("1", "2", "custom")  # NAM architecture versions (today's service)

MAX_PAGE_SIZE = 100


def _is_kind(value, kind):
    return (
        (kind == "str" and isinstance(value, str))
        or (kind == "int" and is_int(value))
        or (kind == "bool" and (value is True or value is False))
        or (kind == "list" and isinstance(value, list))
        or (kind == "dict" and isinstance(value, dict))
    )


def _required(data, name, kind, what):
    """Check that data[name] is present and of `kind`; the record relies on it."""
    value = data.get(name)
    if value is None:
        raise ProtocolError("%s has no %s" % (what, name))
    if not _is_kind(value, kind):
        raise ProtocolError("%s field %s should be %s, got %r" % (what, name, kind, value))


def _lookup(record, name):
    """raw[name] (or the first of its alternative names present) when it has the field's
    kind, else None; AttributeError for names that are not fields."""
    spec = type(record).FIELDS.get(name)
    if spec is None:
        raise AttributeError(name)
    if isinstance(spec, tuple):
        kind, names = spec
    else:
        kind, names = spec, (name,)
    raw = record.raw
    for key in names:
        value = raw.get(key)
        if _is_kind(value, kind):
            return value
    return None


def _obj(data, what):
    if not isinstance(data, dict):
        raise ProtocolError("%s is not a JSON object" % what)
    return data


def _strings(values):
    return [v for v in values or () if isinstance(v, str)]


def _names(values):
    return [v["name"] for v in values or () if isinstance(v, dict) and isinstance(v.get("name"), str)]


class Record:
    """A validated view of one JSON object; `raw` is the object itself.

    Plain fields are read through `__getattr__` from the class's FIELDS table
    (name -> kind, or (kind, names to try)): one small dict per class instead of a
    property per field, so the module costs little heap on MicroPython, and a record
    costs no more than the JSON it wraps.
    """

    FIELDS = {}

    def __init__(self, data, what):
        self.raw = _obj(data, what)

    def __getattr__(self, name):
        return _lookup(self, name)

    def __repr__(self):
        return "<%s %r>" % (type(self).__name__, self.raw.get("id"))


class EmbeddedUser(Record):
    """The short user record embedded in a Tone."""

    def __init__(self, data, what="user"):
        super().__init__(data, what)
        _required(self.raw, "id", "str", what)
        _required(self.raw, "username", "str", what)

    FIELDS = {"id": "str", "username": "str", "avatar_url": "str", "url": "str"}


class User(EmbeddedUser):
    """GET /user."""

    def __init__(self, data):
        super().__init__(data, "user")

    FIELDS = {"id": "str", "username": "str", "avatar_url": "str", "url": "str", "bio": "str",
              "created_at": "str", "updated_at": "str"}

    @property
    def links(self):
        return _strings(self.raw.get("links")) if isinstance(self.raw.get("links"), list) else None

    def to_json(self):
        return {
            "id": self.id,
            "username": self.username,
            "avatar_url": self.avatar_url,
            "url": self.url,
            "bio": self.bio,
            "links": self.links,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class Tone(Record):
    """One tone (a set of models of one rig)."""

    def __init__(self, data):
        super().__init__(data, "tone")
        _required(self.raw, "id", "int", "tone")
        _required(self.raw, "title", "str", "tone")

    FIELDS = {
        "id": "int", "title": "str", "user_id": "str", "created_at": "str", "updated_at": "str",
        "description": "str", "gear": "str", "is_public": "bool",
        # The current service renamed `platform` to `format`: accept either.
        "platform": ("str", ("platform", "format")),
        "license": "str", "models_count": "int", "downloads_count": "int", "favorites_count": "int",
        "url": "str",
    }

    @property
    def user(self):
        data = self.raw.get("user")
        return EmbeddedUser(data, "tone user") if isinstance(data, dict) else None

    @property
    def sizes(self):
        return _strings(self.raw.get("sizes") if isinstance(self.raw.get("sizes"), list) else None)

    @property
    def makes(self):
        return _names(self.raw.get("makes") if isinstance(self.raw.get("makes"), list) else None)

    @property
    def tags(self):
        return _names(self.raw.get("tags") if isinstance(self.raw.get("tags"), list) else None)

    @property
    def is_known_platform(self):
        return self.platform in PLATFORMS

    @property
    def is_known_gear(self):
        return self.gear in GEARS

    def to_json(self):
        user = self.user
        return {
            "id": self.id,
            "title": self.title,
            "user": user.username if user else None,
            "user_id": self.user_id,
            "gear": self.gear,
            "platform": self.platform,
            "license": self.license,
            "sizes": self.sizes,
            "makes": self.makes,
            "tags": self.tags,
            "models_count": self.models_count,
            "is_public": self.is_public,
            "updated_at": self.updated_at,
            "url": self.url,
        }


class Model(Record):
    """One downloadable model file of a tone."""

    def __init__(self, data):
        super().__init__(data, "model")
        _required(self.raw, "id", "int", "model")
        _required(self.raw, "name", "str", "model")
        _required(self.raw, "model_url", "str", "model")

    FIELDS = {
        "id": "int", "name": "str", "model_url": "str", "tone_id": "int", "size": "str",
        "user_id": "str", "created_at": "str", "updated_at": "str",
        "architecture_version": "str",  # today's service: "1", "2" or "custom"
    }

    @property
    def is_known_size(self):
        return self.size in SIZES

    @property
    def filename(self):
        """The file name at the end of model_url (no query, %XX decoded), e.g. 'clean.nam'.

        Never contains a path separator; falls back to 'model-<id>'.
        """
        tail = self.model_url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        name = tail[tail.rfind("/") + 1 :]
        try:
            name = unquote(name)
        except ValueError:  # not UTF-8 once decoded: keep the escaped form
            pass
        name = name.replace("/", "_").replace("\\", "_").strip()
        if name in ("", ".", ".."):
            return "model-%d" % self.id
        return name

    def to_json(self):
        return {
            "id": self.id,
            "name": self.name,
            "tone_id": self.tone_id,
            "size": self.size,
            "filename": self.filename,
            "model_url": self.model_url,
            "updated_at": self.updated_at,
        }


class Page:
    """One page of a PaginatedResponse, items already parsed.

    Accepts the seed's names (pageSize, totalPages) and the current service's
    (page_size, total_pages).
    """

    def __init__(self, data, parse):
        data = _obj(data, "paginated response")
        _required(data, "data", "list", "paginated response")
        items = data["data"]
        self.items = [parse(item) for item in items]
        self.page = _first_int(data, ("page",), 1)
        self.page_size = _first_int(data, ("pageSize", "page_size"), len(items))
        self.total = _first_int(data, ("total",), None)
        self.total_pages = _first_int(data, ("totalPages", "total_pages"), None)


def _first_int(data, names, default):
    for name in names:
        value = data.get(name)
        if is_int(value):
            return value
    return default


class Pager:
    """Walks a paginated listing with the fewest requests.

    Asks for MAX_PAGE_SIZE items per page and stops at totalPages (or at the first
    short or empty page when the server gives no totals).
    """

    def __init__(self, page_size=MAX_PAGE_SIZE):
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError("page_size must be 1..%d" % MAX_PAGE_SIZE)
        self.page_size = page_size
        self.next_page = 1
        self.done = False
        self.total = None

    def query(self, size_name="page_size"):
        """The page and page-size parameters of the next request (`size_name`: the
        dialect's spelling: today's page_size, the seed's pageSize)."""
        return [("page", self.next_page), (size_name, self.page_size)]

    def advance(self, page):
        """Record a received Page; sets `done` when nothing is left."""
        self.total = page.total
        if page.total_pages is not None:
            self.done = self.next_page >= page.total_pages or not page.items
        else:
            self.done = len(page.items) < self.page_size
        self.next_page += 1
