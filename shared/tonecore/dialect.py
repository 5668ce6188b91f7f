"""How one TONE3000 service spells its API: today's dialect, or the seed's v1.

Chosen once per service (the host stores it with the session; the pedal has it in its
config) and used for every request; responses are read in either spelling whatever the
dialect (tonecore.records).

    dialect    sign-in                 page size   tone of a model   model filter
    current    OAuth 2.0 (PKCE/device) page_size   tone_id           architecture
    v1         OTP api_key (the seed)  pageSize    toneId            (none)
"""

from .errors import UsageError


class Dialect:
    """The request spelling of one service.

    Attributes:
        name: "current" or "v1".
        page_size, tone_id: the query parameter names.
        oauth: True when sign-in is OAuth (else the seed's OTP api_key flow).
        architectures: True when model listings take `architecture`.
    """

    def __init__(self, name, page_size, tone_id, oauth, architectures):
        self.name = name
        self.page_size = page_size
        self.tone_id = tone_id
        self.oauth = oauth
        self.architectures = architectures

    def __repr__(self):
        return "<Dialect %s>" % self.name


CURRENT = Dialect("current", "page_size", "tone_id", True, True)
V1 = Dialect("v1", "pageSize", "toneId", False, False)
NAMES = ("current", "v1")


def dialect_named(name):
    """The Dialect called `name` ("current" or "v1"; None: current).

    Raises:
        UsageError: another name.
    """
    if name is None or name == "current":
        return CURRENT
    if name == "v1":
        return V1
    raise UsageError("unknown API dialect %r; use current or v1" % (name,))
