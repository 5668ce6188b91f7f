"""The development stand-ins as commands: `sim` and `emulator`.

Their options are checked here, before anything starts, so that a bad one is a usage
error that names it (a busy --portal-port, a --ca that is not a DER certificate), not
the firmware's own error from inside the simulated pedal.
"""

import click

from tonebridge.cli.common import api_option, check_tcp_port, current_api
from tonecore.errors import ToneError, UsageError

CA_MAX_BYTES = 64 * 1024  # a CA certificate is a few KB

@click.command()
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
    from tonebridge.dev import simulator  # only this command needs it

    if ca:
        check_der_certificate(ca)
    check_tcp_port(simulator.PORTAL_HOST, portal_port, "--portal-port")
    simulator.run(current_api(ctx), board, heap, flash, ca, log, portal_port, overlay, echo=click.echo)


def check_der_certificate(path):
    """Refuse a --ca file that is not a DER certificate (the pedal reads DER only).

    Raises:
        UsageError: unreadable, PEM (with the command that converts it), or not a certificate.
    """
    import ssl

    try:
        with open(path, "rb") as f:
            data = f.read(CA_MAX_BYTES + 1)
    except OSError as error:
        raise UsageError("cannot read %s: %s" % (path, error.strerror or error)) from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        raise UsageError("%s is a PEM certificate; the pedal reads DER (convert it: "
                         "openssl x509 -in %s -outform der -out ca.der)" % (path, path))
    try:
        if len(data) > CA_MAX_BYTES:
            raise ValueError("too large")
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data)
    except (ssl.SSLError, ValueError):
        raise UsageError("%s is not a DER CA certificate (--ca)" % path) from None


def emulator_command():
    """`tonebridge.dev.emulator.command.emulator_command`, or a stand-in saying why it is missing."""
    try:
        from tonebridge.dev.emulator.command import emulator_command as command
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
    return command

