"""What every command shares: the API option, the connection, errors -> exit codes.

Every failure is one line on stderr, `tonebridge: error: …`, never a traceback, and an
exit code from the table below (README.md lists it too).  Tokens and api keys are never
printed.
"""

import os
import sys

import click

from tonecore.errors import (
    ApiError,
    DownloadError,
    IntegrityError,
    ProtocolError,
    RateLimited,
    RedirectError,
    SignInError,
    SignInRequired,
    LinkError,
    ToneError,
    TransportError,
    TrustError,
    UsageError,
)
from tonecore.urls import split_url

from tonebridge.api.downloads import Interrupted
from tonebridge.api.token_store import TokenStore
from tonebridge.api.transport import Connection
from tonebridge.cli import output

DEFAULT_API = "https://www.tone3000.com/api/v1"
API_ENV = "TONEBRIDGE_API"
CLIENT_ID_ENV = "TONEBRIDGE_CLIENT_ID"
DEBUG_ENV = "TONEBRIDGE_DEBUG"
API_PATH = "/api/v1"

EXIT_OK = 0
EXIT_LOCAL = 1  # a local problem: a file exists, a disk error, an internal error
EXIT_USAGE = 2  # bad arguments or URL
EXIT_SIGN_IN = 3  # not signed in, session expired, sign-in failed
EXIT_NETWORK = 4  # cannot reach the service, connection cut, download gave up
EXIT_API = 5  # the service refused or failed: 401/403/404/429/5xx, nonsense reply
EXIT_INTEGRITY = 6  # a download's bytes are wrong (length, SHA-256, format)
EXIT_PEDAL = 7  # the serial link to the pedal failed, or the pedal refused
EXIT_INTERRUPTED = 130  # Ctrl-C

_API_KEY = "tonebridge.api"


def exit_code(error):
    """The exit code for a tonecore error."""
    if isinstance(error, Interrupted):
        return EXIT_INTERRUPTED
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, (SignInRequired, SignInError)):
        return EXIT_SIGN_IN
    if isinstance(error, IntegrityError):
        return EXIT_INTEGRITY
    if isinstance(error, LinkError):
        return EXIT_PEDAL
    if isinstance(error, (TransportError, TrustError, DownloadError)):
        return EXIT_NETWORK
    if isinstance(error, (ApiError, ProtocolError, RedirectError)):
        return EXIT_API
    return EXIT_LOCAL


def describe(error):
    """The message for a tonecore error, with advice where there is one to give."""
    text = str(error)
    if isinstance(error, RateLimited):
        wait = error.retry_after_s
        text += "; try again in %d s" % wait if wait else "; try again in a minute"
    return text


def normalize_api(value):
    """The API base for `value`; a bare origin gets /api/v1.

    Raises:
        UsageError: not an absolute http(s) URL.
    """
    text = (value or "").strip()
    try:
        url = split_url(text)
    except UsageError as error:
        raise UsageError("--api: %s" % error) from None
    if url.query:
        raise UsageError("--api: the API URL must not have a query string: %s" % text)
    path = url.path.rstrip("/") or API_PATH
    return "%s://%s%s" % (url.scheme, url.netloc, path)


def current_api(ctx):
    """--api of the command, else of the group, else $TONEBRIDGE_API, else the service."""
    value = ctx.find_root().meta.get(_API_KEY) or os.environ.get(API_ENV) or DEFAULT_API
    return normalize_api(value)


def _remember_api(ctx, param, value):
    if value:
        ctx.find_root().meta[_API_KEY] = value
    return value


def api_option(command):
    """The per-command --api option (the same as the group's)."""
    return click.option(
        "--api",
        metavar="URL",
        expose_value=False,
        callback=_remember_api,
        help="TONE3000 API base or emulator origin [env: %s; default: %s]" % (API_ENV, DEFAULT_API),
    )(command)


def open_connection(ctx):
    """A Connection to the current API with the saved session.

    Raises:
        SignInRequired: no saved session for this API.
    """
    api = current_api(ctx)
    conn = Connection(api, TokenStore())
    if not conn.session.signed_in:
        conn.close()
        raise SignInRequired("not signed in to %s; run `%s`" % (api, login_command(api)))
    return conn


def login_command(api):
    """The command that signs in to `api`."""
    return "tonebridge login" + ("" if api == DEFAULT_API else " --api " + api)


class TonebridgeGroup(click.Group):
    """A click Group whose `main` turns every failure into one line and an exit code,
    and that loads its `lazy_commands` (the emulator) only when they are used."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        code = guarded(lambda: super(TonebridgeGroup, self).main(
            args, prog_name or "tonebridge", complete_var, standalone_mode=False, **extra))
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SignInRequired as error:
            if "tonebridge login" not in error.message:  # e.g. "the session has expired"
                joint = " with `%s`" if error.message.endswith("sign in again") else "; run `%s`"
                error.message += joint % login_command(current_api(ctx))
            raise

    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}  # name -> function() returning the command

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in self.lazy_commands:
            return self.lazy_commands[name]()  # loaded only when used
        return command


def guarded(run):
    """Run the click main; return the exit code, printing one error line on failure."""
    try:
        result = run()
        return result if type(result) is int else EXIT_OK  # an int only from ctx.exit(code)
    except ToneError as error:
        output.error_line(describe(error))
        return exit_code(error)
    except click.UsageError as error:
        hint = " (see `%s --help`)" % error.ctx.command_path if error.ctx is not None else ""
        output.error_line(error.format_message().rstrip(".") + hint)
        return error.exit_code
    except click.ClickException as error:
        output.error_line(error.format_message())
        return error.exit_code
    except click.Abort as error:
        if isinstance(error.__cause__, EOFError):
            output.error_line("end of input; cancelled")
            return EXIT_LOCAL
        output.error_line("interrupted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        output.error_line("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_LOCAL
    except OSError as error:
        where = " (%s)" % error.filename if error.filename else ""
        output.error_line("%s%s" % (error.strerror or error, where))
        return EXIT_LOCAL
    except Exception as error:  # noqa: BLE001 - never a traceback for the user
        if os.environ.get(DEBUG_ENV):
            raise
        output.error_line("internal error (%s: %s); please report it" % (type(error).__name__, error))
        return EXIT_LOCAL


