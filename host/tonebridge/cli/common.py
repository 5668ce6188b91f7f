"""What every command shares: the API option, the connection, errors -> exit codes.

Every failure is one line on stderr, `tonebridge: error: …`, never a traceback, and an
exit code from the table below, the one table of every command (README.md lists it too;
tests/host/test_cli_exit_codes.py holds the commands to it).  Tokens and api keys are
never printed.

This module is imported by every command before it runs, so it imports only click and
small core modules; the connection (httpx), the token store and the downloads are
imported by the functions that use them.
"""

import importlib
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

from tonebridge.cli import output

DEFAULT_API = "https://www.tone3000.com/api/v1"
API_ENV = "TONEBRIDGE_API"
CLIENT_ID_ENV = "TONEBRIDGE_CLIENT_ID"
DEBUG_ENV = "TONEBRIDGE_DEBUG"
API_PATH = "/api/v1"

# The exit codes of every command (README.md "Exit codes" has the same table).
EXIT_OK = 0
EXIT_LOCAL = 1  # a problem on this computer: a file exists, a disk is full, an internal error
EXIT_USAGE = 2  # the command line: a bad or missing argument, flags that exclude each other, a bad URL,
#                 a --port (serial or TCP) that does not exist, is busy or cannot be used, an unknown board
EXIT_SIGN_IN = 3  # not signed in (to this service), session expired, sign-in failed
EXIT_NETWORK = 4  # cannot reach the service, connection cut, download gave up
EXIT_API = 5  # the service refused or failed: 401/403/404/429/5xx, nonsense reply
EXIT_INTEGRITY = 6  # a download's bytes are wrong (length, SHA-256, format)
EXIT_PEDAL = 7  # the pedal: the serial link failed, it refused, or it has no such model
EXIT_INTERRUPTED = 130  # Ctrl-C (tonebridge.cli.main says so for any moment of a run)

_API_KEY = "tonebridge.api"


def exit_code(error):
    """The exit code for a tonecore error."""
    downloads = sys.modules.get("tonebridge.api.downloads")  # Interrupted comes from there once it is loaded
    if downloads is not None and isinstance(error, downloads.Interrupted):
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
    from tonebridge.api.token_store import TokenStore
    from tonebridge.api.transport import Connection  # httpx: only for the commands that go online

    api = current_api(ctx)
    conn = Connection(api, TokenStore())
    if not conn.session.signed_in:
        conn.close()
        raise SignInRequired("not signed in to %s; run `%s`" % (api, login_command(api)))
    return conn


def check_tcp_port(host, port, option):
    """Refuse a TCP `port` that a server cannot listen on at `host` (0: any free one).

    A probe binds it as a server would (SO_REUSEADDR: only another listener, not a
    closed connection, makes it busy) and lets it go at once.

    Raises:
        UsageError: it is in use, or needs privileges; the message names `option`.
    """
    import errno
    import socket

    if not port:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UsageError("port %d is in use (choose another with %s)" % (port, option)) from None
            if error.errno == errno.EACCES:
                raise UsageError("port %d needs administrator rights (choose one above 1023 with %s)"
                                 % (port, option)) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise UsageError("cannot listen on %s: no such address here" % host) from None
            raise UsageError("cannot listen on %s:%d: %s (choose another with %s)"
                             % (host, port, error.strerror or error, option)) from None


def login_command(api):
    """The command that signs in to `api`."""
    return "tonebridge login" + ("" if api == DEFAULT_API else " --api " + api)


def name_the_service(message, api):
    """`message` of a sign-in error with every `tonebridge login` in it made to sign in
    to `api` (the service in question), and none that names the default service's URL."""
    message = message.replace("`tonebridge login --api %s`" % DEFAULT_API, "`tonebridge login`")
    if api != DEFAULT_API:
        message = message.replace("`tonebridge login`", "`%s`" % login_command(api))
    return message


class CtrlC(Exception):
    """A KeyboardInterrupt in a command, carried past click (whose `main` prints an empty
    line for one before our "interrupted")."""


class TonebridgeGroup(click.Group):
    """A click Group whose `main` turns every failure into one line and an exit code,
    and that knows its commands from a table without importing them.

    Args:
        lazy_commands: {name: (module, attribute, one-line help)}; the attribute is a
            click command, or a function returning one.  `--help` lists the one-line
            helps; a command's module is imported when that command is used.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        code = guarded(lambda: super(TonebridgeGroup, self).main(
            args, prog_name or "tonebridge", complete_var, standalone_mode=False, **extra))
        if standalone_mode:
            sys.exit(code)
        return code

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            raise CtrlC() from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise CtrlC() from None
        except (SignInRequired, SignInError) as error:
            api = current_api(ctx)
            if isinstance(error, SignInRequired) and "tonebridge login" not in error.message:
                joint = " with `%s`" if error.message.endswith("sign in again") else "; run `%s`"
                error.message += joint % login_command(api)  # e.g. "the session has expired"
            error.message = name_the_service(error.message, api)
            raise

    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in self.lazy_commands:
            module, attribute, _ = self.lazy_commands[name]
            command = getattr(importlib.import_module(module), attribute)  # loaded only when used
            if not isinstance(command, click.Command):
                command = command()
        return command

    def format_commands(self, ctx, formatter):
        """The command list of --help, from the table: no command module is imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy_commands:
                text = click.Command(name, help=self.lazy_commands[name][2]).get_short_help_str(limit)
            else:
                command = super().get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                text = command.get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
    except (KeyboardInterrupt, CtrlC):
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


