"""The root group, `tonebridge`, and its command table.

`tonebridge --help` and every command start fast because nothing here imports a
command: COMMANDS names each one's module and attribute, and carries the one line
`--help` shows for it (tests/host/test_cli_startup.py checks each line is the first
line of the command's own help, and that --help and whoami load no httpx, rich,
pyserial or cbor2).  A command's module is imported when the command is used.
"""

import click

from tonebridge import __version__
from tonebridge.cli.common import TonebridgeGroup, api_option

# name: (module, attribute, the line `tonebridge --help` shows); the attribute is a click
# command, or a function that returns one (the emulator's says why it is missing).
COMMANDS = {
    "login": ("tonebridge.cli.account", "login",
              "Sign in to TONE3000 (OAuth in a browser); the session is saved (mode 0600)."),
    "whoami": ("tonebridge.cli.account", "whoami", "Show who is signed in (from the saved session)."),
    "logout": ("tonebridge.cli.account", "logout", "Forget the saved session on this computer."),
    "tones": ("tonebridge.cli.catalog", "tones", "List your favorited (or created) tones, all pages."),
    "models": ("tonebridge.cli.catalog", "models", "List the models of tone TONE_ID."),
    "download": ("tonebridge.cli.catalog", "download",
                 "Download model MODEL_ID: resumable, verified, installed atomically."),
    "emulator": ("tonebridge.cli.dev", "emulator_command",
                 "Run a local TONE3000 API emulator (prints its base URL first)."),
    "sim": ("tonebridge.cli.dev", "sim",
            "Run the pedal firmware under MicroPython: console on a pty, portal on loopback."),
    "firmware": ("tonebridge.cli.firmware", "firmware_group",
                 "Pedal firmware: list the boards, build for one, deploy to a board over USB."),
    "pedal": ("tonebridge.cli.pedal", "pedal_group", "A pedal on USB serial: look, push, sync, manage."),
}


@click.group(name="tonebridge", cls=TonebridgeGroup, context_settings={"help_option_names": ["-h", "--help"]},
             lazy_commands=COMMANDS)
@api_option
@click.version_option(__version__, prog_name="tonebridge")
def cli():
    """Get TONE3000 amp models onto ESP32 guitar pedals: sign in, browse, download."""
