"""Signing in and out: `login`, `whoami`, `logout`.

`login` saves the account's record with the session, so `whoami` answers from the
session file alone (no network, no httpx: it starts as fast as `mpremote --help`);
`whoami --check` asks the service, which also proves the session still works.
"""

import sys
import time

import click

from tonebridge.api.token_store import TokenStore
from tonebridge.cli import output
from tonebridge.cli.common import CLIENT_ID_ENV, api_option, current_api, login_command, normalize_api, open_connection
from tonecore.errors import SignInRequired, UsageError

@click.command()
@api_option
@click.option("--client-id", envvar=CLIENT_ID_ENV, metavar="KEY",
              help="Your app's publishable key (t3k_pub_...), from TONE3000 -> Settings -> API Keys "
                   "[env: %s]." % CLIENT_ID_ENV)
@click.option("--device", "how", flag_value="device",
              help="No browser here (e.g. over SSH): show a code to enter on a phone or another computer.")
@click.option("--paste", "how", flag_value="paste",
              help="No listener: paste the address the browser ends on.")
@click.option("--otp", is_flag=True,
              help="The seed's sign-in for a TONE3000 API v1 service: an emailed 6-digit code, no client id.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser; just print the address.")
@click.option("--timeout", "timeout_s", type=click.IntRange(min=1), default=600, show_default=True,
              help="Seconds to wait for the browser to come back.")
@click.option("--qr/--no-qr", default=None,
              help="With --paste or --device: draw a QR code for a phone [default: when stdout is a terminal].")
@click.pass_context
def login(ctx, client_id, how, otp, no_browser, timeout_s, qr):
    """Sign in to TONE3000 (OAuth in a browser); the session is saved (mode 0600)."""
    from tonebridge.api.downloads import Interrupted
    from tonebridge.api.token_store import Profile
    from tonebridge.api.transport import Connection
    from tonecore.auth import OtpSignIn
    from tonecore.oauth import DeviceSignIn, PkceSignIn, check_client_id

    api = current_api(ctx)
    store = TokenStore()
    if qr is None:
        qr = sys.stdout.isatty()
    if otp and how == "device":
        raise UsageError("--device is today's sign-in; the seed's OTP flow (--otp) has no device grant")
    if otp:
        store.profile = Profile("otp", None, "v1")

        def make_flow(redirect_url):
            return OtpSignIn(api, redirect_url, otp_only=True)
    else:
        client_id = check_client_id(client_id)
        store.profile = Profile("device" if how == "device" else "pkce", client_id, "current")

        def make_flow(redirect_url):
            return PkceSignIn(api, client_id, redirect_url)

    def connect(flow):
        return Connection(api, store, flow, load_tokens=False)

    from tonebridge.api import signin as login_flow  # the listener, QR code and browser: only for login

    try:
        if how == "device":
            user = login_flow.login_with_device(DeviceSignIn(api, client_id), connect, qr)
        elif how == "paste":
            user = login_flow.login_with_paste(make_flow, connect, qr)
        else:
            user = login_flow.login_with_listener(make_flow, connect, not no_browser, timeout_s)
    except KeyboardInterrupt:
        raise Interrupted("sign-in cancelled") from None
    store.remember_user(api, user.to_json())  # for `whoami`, offline
    click.echo("Signed in as %s" % output.plain(user.username))


@click.command()
@api_option
@click.option("--check", is_flag=True,
              help="Ask TONE3000 (proves the session still works, refreshing it if due) instead of reading the "
                   "record saved at sign-in.")
@click.option("--json", "as_json", is_flag=True, help="Print the user record as JSON.")
@click.pass_context
def whoami(ctx, check, as_json):
    """Show who is signed in (from the saved session).

    The account saved at sign-in, read from the session file without going online;
    with --check, or for a session saved without it, asked of the service.
    """
    api = current_api(ctx)
    store = TokenStore()
    if store.load(api, int(time.monotonic() * 1000), time.time()) is None:
        raise SignInRequired("not signed in to %s; run `%s`" % (api, login_command(api)))
    user = None if check else _saved_user(store)
    if user is None:
        with open_connection(ctx) as conn:
            user = conn.run(conn.client.user())
        store.remember_user(api, user.to_json())
    if as_json:
        output.emit_json(user.to_json())
        return
    click.echo(output.plain(user.username))
    click.echo("  id       %s" % output.plain(user.id))
    if user.url:
        click.echo("  profile  %s" % output.plain(user.url))
    click.echo("  api      %s" % api)


def _saved_user(store):
    """The User saved with the loaded session, or None (none saved, or not a user record)."""
    from tonecore.errors import ProtocolError
    from tonecore.records import User

    try:
        return User(store.user) if store.user is not None else None
    except ProtocolError:
        return None


@click.command()
@api_option
@click.pass_context
def logout(ctx):
    """Forget the saved session on this computer."""
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

