"""The one exception tree of tonecore.

    ToneError                  base of everything tonecore raises
    +-- UsageError             bad input from the caller (bad URL, bad argument)
    +-- TransportError         the network failed (adapters map their own errors here)
    +-- TrustError             the server's TLS certificate or host name did not verify
                               (never retried: not a network hiccup)
    +-- ProtocolError          a reply that makes no sense (bad JSON, bad Content-Range,
    |   |                      a damaged serial-link frame)
    |   +-- CborError          CBOR outside our subset (tonecore.cbor)
    +-- RedirectError          too many redirects, https->http, redirect without Location
    +-- SignInError            the sign-in callback carried an error or no credentials,
    |                          or the credentials were refused when exchanged
    +-- SignInRequired         no session, or it could not be refreshed: sign in again
    +-- ApiError               the API answered with an HTTP error status (.status)
    |   +-- Forbidden          403: not the owner and not a favorite
    |   +-- NotFound           404
    |   +-- RateLimited        429 (.retry_after_s)
    |   +-- ServerError        5xx
    +-- DownloadError          a download could not be completed
    |   +-- IntegrityError     the bytes are wrong: length, hash or format
    |       +-- FormatError    not a complete file of its kind (tonecore.formats)
    +-- LinkError              the USB serial link to the pedal (tonecore.link)
        +-- LinkBroken         the link failed: no answer, port closed, too many
        |                      retransmissions
        +-- PedalRefused       the pedal answered with an ERROR (.code: tonecore.link E_*)

Defined beside the code that raises them, in the same tree:

    ToneError
    +-- FileConflict, Interrupted        host/tonebridge/api/downloads.py
    +-- SimError                         host/tonebridge/dev/simsetup.py
    +-- FirmwareError                    host/tonebridge/boards/__init__.py
    |   +-- ManifestError                host/tonebridge/boards/manifests.py
    +-- LibraryError                     firmware/pedal/library.py
        +-- NotInstalled, LibraryFull, TooLarge   (each carries its link error code)

Lower-layer errors (socket, TLS, httpx) are mapped to TransportError (or TrustError)
once, at the adapter boundary; nothing above the adapters sees them.
"""


class ToneError(Exception):
    """Base class of every error raised by tonecore."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return self.message


class UsageError(ToneError):
    """The caller passed something unusable (a malformed URL, an impossible value)."""


class TransportError(ToneError):
    """The connection failed: refused, reset, timed out, cut mid-body."""


class TrustError(ToneError):
    """The server could not prove who it is: untrusted certificate or wrong host name."""


class ProtocolError(ToneError):
    """The server's reply does not follow the protocol we expect."""


class RedirectError(ToneError):
    """A redirect that must not be followed."""


class SignInError(ToneError):
    """Sign-in did not complete (the user cancelled, or the key was refused)."""


class SignInRequired(ToneError):
    """There is no usable session: the user has to sign in (again)."""


class ApiError(ToneError):
    """The API answered with an error status.

    Attributes:
        status: the HTTP status code.
    """

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class Forbidden(ApiError):
    """403: the model is only for its owner and for users who favorited the tone."""


class NotFound(ApiError):
    """404: no such tone, model or page."""


class RateLimited(ApiError):
    """429: too many requests; `retry_after_s` says how long to wait (or None)."""

    def __init__(self, message, status=429, retry_after_s=None):
        super().__init__(message, status)
        self.retry_after_s = retry_after_s


class ServerError(ApiError):
    """5xx: the service failed; usually worth retrying later."""


class DownloadError(ToneError):
    """A download could not be completed (after retries)."""


class IntegrityError(DownloadError):
    """The downloaded bytes are not what was announced (length, SHA-256, format)."""


class LinkError(ToneError):
    """The USB serial link to the pedal: it broke, or the pedal refused a request."""


class LinkBroken(LinkError):
    """The link failed: the pedal does not answer, the port closed, too many losses."""


class PedalRefused(LinkError):
    """The pedal answered a request with an ERROR.

    Attributes:
        code: the pedal's error code (tonecore.link E_*).
    """

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code
