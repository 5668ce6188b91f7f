"""`tonebridge firmware …`: list the boards, flash MicroPython onto one, build the firmware
for it, deploy it, refresh CA roots.

The work is done by tonebridge.boards (facts, build, deploy, cas); these commands print
what it returns.
"""

import os

import click

from tonebridge.boards.facts import board_names, load_board
from tonebridge.boards.flash import DEFAULT_BAUD as DEFAULT_FLASH_BAUD
from tonebridge.cli.output import emit_json, human_bytes, note


def _memory(count):
    """A board's memory size: "4 MB", "128 KB", or "none"."""
    return human_bytes(count) if count else "none"


@click.group("firmware")
def firmware_group():
    """Pedal firmware: list the boards, build for one, deploy to a board over USB."""


@firmware_group.command("boards")
@click.option("--json", "as_json", is_flag=True, help="Print the boards' facts as JSON.")
def boards_command(as_json):
    """List the boards and their facts."""
    boards = [load_board(name) for name in board_names()]
    if as_json:
        emit_json([board.to_json() for board in boards])
        return
    for board in boards:
        formats = "; ".join("%s %s" % (platform, sizes if sizes == "*" else ",".join(sizes))
                            for platform, sizes in board.formats.items())
        click.echo("%-14s %s" % (board.name, board.title))
        click.echo("%-14s arch %s · flash %s · filesystem %s · heap %s · PSRAM %s · serial %s"
                   % ("", board.arch or "bytecode", _memory(board.flash_bytes), _memory(board.fs_bytes),
                      _memory(board.heap_budget), _memory(board.psram_bytes), board.serial))
        click.echo("%-14s models: %s (largest file %s)" % ("", formats, _memory(board.max_model_bytes)))
        if board.esptool_chip:
            click.echo("%-14s MicroPython: %s at 0x%X (esptool --chip %s)"
                       % ("", board.micropython_image, board.flash_offset, board.esptool_chip))


@firmware_group.command("flash")
@click.option("--board", required=True, metavar="BOARD", help="A board name (see `tonebridge firmware boards`).")
@click.option("--port", required=True, metavar="PORT", help="The serial port, e.g. /dev/ttyUSB0, COM3 or `auto`.")
@click.option("--image", required=True, metavar="FILE.bin",
              help="MicroPython's firmware for the board (its download page's .bin), or a custom build's firmware.bin.")
@click.option("--erase", is_flag=True, help="Erase the whole flash first (models, settings and sign-in go too).")
@click.option("--baud", type=click.IntRange(min=9600), default=DEFAULT_FLASH_BAUD, show_default=True,
              help="esptool's line rate (115200 for a long or flaky cable).")
def flash_command(board, port, image, erase, baud):
    """Write MicroPython's firmware image to a board with esptool, at the board's offset.

    Needs esptool: pip install 'tonebridge[flash]'.  The image is checked first (an
    ESP image for the board's chip, bootloader and partition table included, that fits
    the flash); esptool's progress goes to stderr.
    """
    from tonebridge.boards.flash import flash

    def write(text):
        click.echo(text, err=True, nl=False)

    done = flash(board, port, image, erase, baud, write=write)
    click.echo("Flashed %s (%d bytes) at 0x%X on %s%s; the board is restarting into MicroPython. Next: "
               "tonebridge firmware deploy --board %s --port %s"
               % (os.path.basename(image), done["bytes"], done["offset"], done["port"],
                  " after erasing the flash" if erase else "", done["board"], done["port"]))


@firmware_group.command("build")
@click.option("--board", required=True, metavar="BOARD", help="A board name (see `tonebridge firmware boards`).")
@click.option("--out", metavar="DIR", help="The output folder [default: build/BOARD].")
@click.option("--json", "as_json", is_flag=True, help="Print the build record as JSON.")
def build_command(board, out, as_json):
    """Compile the firmware for BOARD into the layout its flash needs."""
    from tonebridge.boards.build import build

    result = build(board, out)
    if as_json:
        emit_json({key: value for key, value in result.items() if key != "sources"})
        return
    info = load_board(board)
    click.echo("Built %s (%s) in %s: %d files, %d bytes (%d%% of the %s filesystem); %s"
               % (info.name, info.arch or "bytecode", result["out"], len(result["files"]), result["total_bytes"],
                  100 * result["total_bytes"] // info.fs_bytes, _memory(info.fs_bytes),
                  "%d rebuilt" % len(result["rebuilt"]) if result["rebuilt"] else "all up to date"))


@firmware_group.command("deploy")
@click.option("--board", required=True, metavar="BOARD", help="A board name (see `tonebridge firmware boards`).")
@click.option("--port", required=True, metavar="PORT", help="The serial port, e.g. /dev/ttyUSB0, COM3 or `auto`.")
@click.option("--out", metavar="DIR", help="The build folder [default: build/BOARD].")
@click.option("--force", is_flag=True, help="Copy every file, not only the changed ones.")
def deploy_command(board, port, out, force):
    """Copy the build of BOARD to a board running MicroPython, then reset it."""
    from tonebridge.boards.deploy import deploy

    summary = deploy(board, port, out, force, note=note)
    if summary["copied"] or summary["removed"]:
        click.echo("Deployed %s to %s: %d files copied (%d bytes), %d removed; the board is restarting"
                   % (summary["board"], port, len(summary["copied"]), summary["bytes"], len(summary["removed"])))
    else:
        click.echo("%s on %s is up to date" % (summary["board"], port))


@firmware_group.command("refresh-cas")
@click.option("--bundle", metavar="PEM", help="A PEM bundle [default: certifi's, else the system's].")
def refresh_cas_command(bundle):
    """Rewrite boards/*/ca/*.der from a CA bundle."""
    from tonebridge.boards.cas import refresh_cas

    for path in refresh_cas(bundle=bundle):
        click.echo(os.path.relpath(path))
