"""Signing in and out: `login`, `whoami`, `logout`."""

import sys

import click

from tonebridge.api.downloads import Interrupted
from tonebridge.api.token_store import TokenStore
from tonebridge.api.transport import Connection
from tonebridge.cli import output
from tonebridge.cli.common import api_option, current_api, normalize_api, open_connection
from tonecore.errors import SignInRequired

@click.command()
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

    from tonebridge.api import signin as login_flow  # the listener, QR code and browser: only for login


    try:
        if paste:
            user = login_flow.login_with_paste(api, connect, qr)
        else:
            user = login_flow.login_with_listener(api, connect, not no_browser, qr, timeout_s)
    except KeyboardInterrupt:
        raise Interrupted("sign-in cancelled") from None
    click.echo("Signed in as %s" % user.username)


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
    click.echo(user.username)
    click.echo("  id       %s" % user.id)
    if user.url:
        click.echo("  profile  %s" % user.url)
    click.echo("  api      %s" % conn.api_base)


@click.command()
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

