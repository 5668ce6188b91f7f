"""Signing in and out: `login`, `whoami`, `logout`."""

import sys

import click

from tonebridge.api.downloads import Interrupted
from tonebridge.api.token_store import TokenStore
from tonebridge.api.transport import Connection
from tonebridge.cli import output
from tonebridge.api.token_store import Profile
from tonebridge.cli.common import CLIENT_ID_ENV, api_option, current_api, normalize_api, open_connection
from tonecore.auth import OtpSignIn
from tonecore.errors import SignInRequired, UsageError
from tonecore.oauth import DeviceSignIn, PkceSignIn, check_client_id

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
    click.echo("Signed in as %s" % output.plain(user.username))


@click.command()
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
    click.echo(output.plain(user.username))
    click.echo("  id       %s" % output.plain(user.id))
    if user.url:
        click.echo("  profile  %s" % output.plain(user.url))
    click.echo("  api      %s" % conn.api_base)


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

