"""The `tonebridge` command line.

    tonebridge [--api URL] COMMAND …
      login [--no-browser] [--paste] [--timeout S] [--qr/--no-qr]
      whoami [--json]
      logout
      tones [--favorited|--created] [--json]
      models TONE_ID [--json]
      download MODEL_ID [--tone TONE_ID] [-o PATH] [--force] [--json]
      emulator …            (the local TONE3000 stand-in, see tonebridge.emulator)
      firmware boards|build|deploy|refresh-cas …   (the pedal firmware, see tonebridge.firmware)
      sim [--board B] [--heap SIZE] [--flash PATH] [--ca DER] [--log FILE] [--portal-port N]
                            (the simulated pedal, see tonebridge.sim)
      pedal info|ls|push FILE|rm MODEL|activate MODEL|sync [--port PORT] [--json]
                            (a pedal on USB serial, see tonebridge.pedalcli)

`--api` is accepted before or after the command; else $TONEBRIDGE_API; else the real
service.  A bare origin (`http://127.0.0.1:54321`, as the emulator prints) means
`<origin>/api/v1`.

Every failure is one line on stderr, `tonebridge: error: …`, never a traceback, and an
exit code: 0 ok · 1 local problem · 2 usage · 3 not signed in · 4 network · 5 the API
refused or failed · 6 integrity · 7 pedal link failed or pedal refused · 130 interrupted.  Tokens and api keys are never printed.
"""

import os
import sys

import click

from tonebridge import __version__
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

from . import downloads, output
from .downloads import Interrupted
from .firmware import firmware_group
from .pedalcli import pedal_group
from .store import TokenStore, config_home
from .transport import Connection

DEFAULT_API = "https://www.tone3000.com/api/v1"
API_ENV = "TONEBRIDGE_API"
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
    and that loads the `emulator` command only when it is used."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        code = _guarded(lambda: super(TonebridgeGroup, self).main(
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

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | {"emulator"})

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name == "emulator":
            return _emulator_command()
        return command


def _guarded(run):
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


def _emulator_command():
    """`tonebridge.emulator.cli.emulator_command`, or a stand-in saying why it is missing."""
    try:
        from tonebridge.emulator.cli import emulator_command
    except Exception as error:  # noqa: BLE001 - the CLI must work without it
        reason = "%s: %s" % (type(error).__name__, error)

        @click.command(
            "emulator",
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
            help="The local TONE3000 emulator (not available in this installation).",
        )
        def unavailable():
            raise ToneError("the emulator is not available (%s)" % reason)

        return unavailable
    return emulator_command


@click.group(name="tonebridge", cls=TonebridgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@api_option
@click.version_option(__version__, prog_name="tonebridge")
def cli():
    """Get TONE3000 amp models onto ESP32 guitar pedals: sign in, browse, download."""


@cli.command()
@api_option
@click.option("--no-browser", is_flag=True, help="Do not open a browser; just print the URL and QR code.")
@click.option("--paste", is_flag=True, help="No listener: paste the address the browser ends on (or the api_key).")
@click.option("--timeout", "timeout_s", type=click.IntRange(min=1), default=600, show_default=True,
              help="Seconds to wait for the browser to come back.")
@click.option("--qr/--no-qr", default=None, help="Draw a QR code of the URL [default: when stdout is a terminal].")
@click.pass_context
def login(ctx, no_browser, paste, timeout_s, qr):
    """Sign in with a 6-digit code sent by email; the session is saved (mode 0600)."""
    api = current_api(ctx)
    store = TokenStore()
    if qr is None:
        qr = sys.stdout.isatty()

    def connect(redirect_url):
        return Connection(api, store, redirect_url, load_tokens=False)

    from . import login as login_flow  # the listener, QR code and browser: only for login

    try:
        if paste:
            user = login_flow.login_with_paste(api, connect, qr)
        else:
            user = login_flow.login_with_listener(api, connect, not no_browser, qr, timeout_s)
    except KeyboardInterrupt:
        raise Interrupted("sign-in cancelled") from None
    click.echo("Signed in as %s" % user.username)


@cli.command()
@api_option
@click.option("--json", "as_json", is_flag=True, help="Print the user record as JSON.")
@click.pass_context
def whoami(ctx, as_json):
    """Show who is signed in."""
    with open_connection(ctx) as conn:
        user = conn.run(conn.client.user())
    if as_json:
        output.emit_json(user.to_json())
        return
    click.echo(user.username)
    click.echo("  id       %s" % user.id)
    if user.url:
        click.echo("  profile  %s" % user.url)
    click.echo("  api      %s" % conn.api_base)


@cli.command()
@api_option
@click.pass_context
def logout(ctx):
    """Forget the saved session (the v1 API has no way to revoke it)."""
    api = current_api(ctx)
    store = TokenStore()
    stored = store.stored_api()
    if stored is None:
        if store.delete():  # a damaged file
            click.echo("Removed the damaged session file %s." % store.path)
        else:
            click.echo("Not signed in.")
        return
    if normalize_api(stored) != api:
        raise SignInRequired(
            "not signed in to %s (the saved session is for %s; use `tonebridge logout --api %s`)"
            % (api, stored, stored)
        )
    store.delete()
    click.echo("Signed out of %s." % api)


@cli.command()
@api_option
@click.option("--favorited", "which", flag_value="favorited", default=True, help="Tones you favorited (default).")
@click.option("--created", "which", flag_value="created", help="Tones you created.")
@click.option("--json", "as_json", is_flag=True, help="Print the tones as JSON.")
@click.pass_context
def tones(ctx, which, as_json):
    """List your favorited (or created) tones, all pages."""
    with open_connection(ctx) as conn:
        items = conn.run(conn.client.all_tones(which))
    if as_json:
        output.emit_json([tone.to_json() for tone in items])
    elif not items:
        click.echo("No %s tones." % which)
    else:
        output.tones_table(items, "%s tones (%d)" % (which.capitalize(), len(items)))


@cli.command()
@api_option
@click.argument("tone_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the models as JSON.")
@click.pass_context
def models(ctx, tone_id, as_json):
    """List the models of tone TONE_ID."""
    with open_connection(ctx) as conn:
        items = conn.run(conn.client.all_models(tone_id))
    index = downloads.ModelIndex(config_home(), conn.api_base)
    downloads.remember_models(index, items, tone_id)
    index.save()
    if as_json:
        output.emit_json([model.to_json() for model in items])
    elif not items:
        click.echo("Tone %d has no models." % tone_id)
    else:
        output.models_table(items, "Models of tone %d (%d)" % (tone_id, len(items)))


@cli.command()
@api_option
@click.argument("model_id", type=click.IntRange(min=1))
@click.option("--tone", "tone_id", type=click.IntRange(min=1), help="The model's tone (skips the search).")
@click.option("-o", "--output", "out", metavar="PATH",
              help="A file, or a directory (an existing one, or ending in /); default: the current directory.")
@click.option("--force", is_flag=True, help="Replace an existing file with different content.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def download(ctx, model_id, tone_id, out, force, as_json):
    """Download model MODEL_ID: resumable, verified, installed atomically."""
    with open_connection(ctx) as conn:
        index = downloads.ModelIndex(config_home(), conn.api_base)
        with output.DownloadProgress("model %d" % model_id) as progress:

            def target_of(ref):
                return downloads.target_path(out, ref.filename)

            ref, result = downloads.download_model(
                conn, model_id, target_of, index, tone_id, force, progress.update, output.note
            )
    if as_json:
        record = result.to_json()
        record.update({"model_id": ref.id, "name": ref.name, "tone_id": ref.tone_id})
        output.emit_json(record)
        return
    if result.unchanged:
        click.echo("%s is already up to date (%d bytes, sha256 %s)" % (result.path, result.size, result.sha256))
        return
    notes = []
    if result.resumed_from:
        notes.append("resumed from byte %d" % result.resumed_from)
    if result.retries:
        notes.append("recovered from %d interrupted transfer%s" % (result.retries, "" if result.retries == 1 else "s"))
    click.echo("Saved %s%s" % (result.path, " (%s)" % "; ".join(notes) if notes else ""))
    click.echo("  %d bytes, sha256 %s" % (result.size, result.sha256))


@cli.command()
@api_option
@click.option("--board", default="unix_sim", show_default=True, help="The board to simulate (a folder of boards/).")
@click.option("--heap", metavar="SIZE", help="Heap for the firmware's data, e.g. 128k [default: the board's budget]; the "
                   "bytecode the unix port loads is added (not with a frozen-firmware micropython).")
@click.option("--flash", metavar="PATH", help="The flash image, created if missing [default: in the user data dir].")
@click.option("--ca", metavar="DERFILE", type=click.Path(exists=True, dir_okay=False),
              help="A DER CA certificate the pedal trusts for https.")
@click.option("--log", metavar="FILE", help="Append the pedal's console to FILE.")
@click.option("--portal-port", type=click.IntRange(0, 65535), help="The portal's port [default: a free one].")
@click.option("--overlay", metavar="DIR", type=click.Path(exists=True, file_okay=False), hidden=True,
              help="Sources compiled over the firmware (tests swap in a fake pedal/main.py).")
@click.pass_context
def sim(ctx, board, heap, flash, ca, log, portal_port, overlay):
    """Run the pedal firmware under MicroPython: console on a pty, portal on loopback.

    Prints `serial: /dev/pts/N` and `portal: http://127.0.0.1:PORT/`, then runs until
    Ctrl-C or SIGTERM.
    """
    from . import sim as simulator  # only this command needs it

    simulator.run(current_api(ctx), board, heap, flash, ca, log, portal_port, overlay, echo=click.echo)


cli.add_command(firmware_group)
cli.add_command(pedal_group)


def main(argv=None):
    """Console entry point (`tonebridge`, `python -m tonebridge`)."""
    return cli.main(argv, prog_name="tonebridge")
