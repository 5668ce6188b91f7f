"""The `tonebridge` command line.

    tonebridge [--api URL] COMMAND …
      login [--no-browser] [--paste] [--timeout S] [--qr/--no-qr]
      whoami [--json]
      logout
      tones [--favorited|--created] [--json]
      models TONE_ID [--json]
      download MODEL_ID [--tone TONE_ID] [-o PATH] [--force] [--json]
      emulator …            (the local TONE3000 stand-in, see tonebridge.dev.emulator)
      firmware boards|build|deploy|refresh-cas …   (the pedal firmware, see tonebridge.cli.firmware)
      sim [--board B] [--heap SIZE] [--flash PATH] [--ca DER] [--log FILE] [--portal-port N]
                            (the simulated pedal, see tonebridge.dev.simulator)
      pedal info|ls|push FILE|rm MODEL|activate MODEL|sync [--port PORT] [--json]
                            (a pedal on USB serial, see tonebridge.cli.pedal)

`--api` is accepted before or after the command; else $TONEBRIDGE_API; else the real
service.  A bare origin (`http://127.0.0.1:54321`, as the emulator prints) means
`<origin>/api/v1`.

Every failure is one line on stderr, `tonebridge: error: …`, never a traceback, and an
exit code: 0 ok · 1 local problem · 2 usage · 3 not signed in · 4 network · 5 the API
refused or failed · 6 integrity · 7 pedal link failed or pedal refused · 130 interrupted.  Tokens and api keys are never printed.
"""

import click

from tonebridge import __version__
from tonebridge.cli import account, catalog, dev
from tonebridge.cli.firmware import firmware_group
from tonebridge.cli.common import TonebridgeGroup, api_option
from tonebridge.cli.pedal import pedal_group


@click.group(name="tonebridge", cls=TonebridgeGroup, context_settings={"help_option_names": ["-h", "--help"]},
             lazy_commands={"emulator": dev.emulator_command})
@api_option
@click.version_option(__version__, prog_name="tonebridge")
def cli():
    """Get TONE3000 amp models onto ESP32 guitar pedals: sign in, browse, download."""


for command in (account.login, account.whoami, account.logout, catalog.tones, catalog.models, catalog.download,
                dev.sim, firmware_group, pedal_group):
    cli.add_command(command)


def main(argv=None):
    """Console entry point (`tonebridge`, `python -m tonebridge`)."""
    return cli.main(argv, prog_name="tonebridge")

