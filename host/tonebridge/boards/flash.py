"""Flash: MicroPython's firmware image written to a board with esptool.

    flash(board, port, image, erase=False, baud=DEFAULT_BAUD, write=None)

This is the first step from a bare board to a pedal; `deploy` (the pedal firmware as
.mpy files) comes after it.  Before anything touches the board, `check_image` reads the
image's head: it must be a whole ESP32-family firmware image for the board's chip, as
MicroPython's download page offers it (or MicroPython's make builds it) for writing at
the board's FLASH_OFFSET:

    byte 0                          0xE9, the ESP image magic (the second-stage bootloader)
    bytes 12-13                     the chip id (little-endian), facts.CHIPS
    0x8000 - FLASH_OFFSET           the partition table's first entry, 0xAA 0x50 (an app
                                    image alone, micropython.bin, has none)
    its size                        within the flash from FLASH_OFFSET

esptool (`pip install 'tonebridge[flash]'`: not needed for anything else) runs as a
subprocess of this Python, `python -m esptool --chip C --port P --baud N write-flash -z
OFFSET FILE` (with `--erase-all` when asked: the whole chip erased first, in the same
connection, so a native-USB board is not reset in between); its output (the progress)
goes to `write` as it comes, and a failure becomes one line: a port that cannot be opened, or a chip
that is not the board's, is a UsageError (exit 2); no bootloader answering, or any
other failure of esptool, a FirmwareError (exit 1), as is esptool missing.
"""

import codecs
import importlib.metadata
import os
import re
import subprocess
import sys
import threading

from tonecore.errors import UsageError

from tonebridge.boards import FirmwareError
from tonebridge.boards.facts import CHIPS, load_board

ESP_IMAGE_MAGIC = 0xE9
CHIP_ID_AT = 12  # in an image's extended header: the chip id, u16 little-endian
PARTITION_TABLE_AT = 0x8000  # ESP-IDF's (and so MicroPython's) partition table, on the flash
PARTITION_MAGIC = b"\xaa\x50"
DEFAULT_BAUD = 460800  # what MicroPython's download page uses; --baud 115200 for a flaky cable
ESPTOOL_MAJOR = 5  # write-flash, erase-flash: esptool 5's command names
INSTALL_HINT = "pip install 'tonebridge[flash]'"
ERASE_TIMEOUT_S = 180  # a whole 8 MB chip erases in well under a minute
CONNECT_S = 120  # esptool's own connection attempts, the stub upload, the verify
TAIL_BYTES = 8192  # esptool's last output, kept to say why it failed


def download_url(board):
    """MicroPython's download page for `board` (a facts.Board), or None."""
    image = board.micropython_image
    return "https://micropython.org/download/%s/" % image.split("-")[0] if image else None


def check_image(board, path):
    """Check that `path` is a whole firmware image for `board` that fits its flash.

    Args:
        board: a facts.Board with ESPTOOL_CHIP and FLASH_OFFSET.
        path: the image file.
    Returns:
        its size in bytes.
    Raises:
        UsageError: no such file, empty, unreadable, not an ESP image, one for another
            chip, an app image without the bootloader and partition table, too big.
    """
    if not os.path.exists(path):
        raise UsageError("no such image file: %s" % path)
    if os.path.isdir(path):
        raise UsageError("%s is a folder, not an image file" % path)
    offset = board.flash_offset
    table_at = PARTITION_TABLE_AT - offset
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(table_at)
            table = f.read(2)
    except OSError as error:
        raise UsageError("cannot read %s: %s" % (path, error.strerror or error)) from None
    wanted = "the %s image (%s)" % (board.micropython_image, download_url(board))
    if size == 0:
        raise UsageError("%s is empty; download %s" % (path, wanted))
    if head[0] != ESP_IMAGE_MAGIC:
        raise UsageError("%s is not an ESP32 firmware image (its first byte is 0x%02X, not 0x%02X); download %s"
                         % (path, head[0], ESP_IMAGE_MAGIC, wanted))
    chip_name, chip_id = CHIPS[board.esptool_chip]
    found = head[CHIP_ID_AT] | head[CHIP_ID_AT + 1] << 8 if len(head) >= CHIP_ID_AT + 2 else None
    if found != chip_id:
        other = [name for name, known in CHIPS.values() if known == found]
        raise UsageError("%s is an image for %s, not for the %s of %s; download %s"
                         % (path, "the " + other[0] if other else "chip id %s" % found, chip_name, board.name, wanted))
    if table != PARTITION_MAGIC:
        raise UsageError("%s has no partition table at 0x%X (byte 0x%X of the file): it is not a whole MicroPython "
                         "image for writing at 0x%X (an app image, micropython.bin?); download %s"
                         % (path, PARTITION_TABLE_AT, table_at, offset, wanted))
    if offset + size > board.flash_bytes:
        raise UsageError("%s is %d bytes: from 0x%X it does not fit the %s's %d MB of flash"
                         % (path, size, offset, board.name, board.flash_bytes >> 20))
    return size


def esptool_command():
    """How to run esptool: this Python with `-m esptool`.

    Raises:
        FirmwareError: esptool is not installed here, or older than esptool 5.
    """
    try:
        version = importlib.metadata.version("esptool")
    except importlib.metadata.PackageNotFoundError:
        raise FirmwareError("esptool is not installed: %s" % INSTALL_HINT) from None
    major = re.match(r"\d+", version)
    if not major or int(major.group()) < ESPTOOL_MAJOR:
        raise FirmwareError("esptool %s is too old (%d or newer is needed): %s"
                            % (version, ESPTOOL_MAJOR, INSTALL_HINT.replace("install", "install -U")))
    return [sys.executable, "-m", "esptool"]


def write_timeout_s(size, baud):
    """How long a write of `size` bytes at `baud` may take: connecting and verifying, and
    four times the line time (a compressed write takes less than one)."""
    return CONNECT_S + 4 * size * 10 // baud


def esptool_argv(esptool, board, port, baud, *command):
    """The esptool command line: chip, port, baud, then `command`."""
    return list(esptool) + ["--chip", board.esptool_chip, "--port", port, "--baud", str(baud)] + list(command)


def _check_port(port):
    """Open and close `port` the way every other command does, for the same one-line
    errors (no such port, busy, no permission); POSIX only (pyserial's exclusive open)."""
    if os.name != "posix":
        return
    from tonebridge.link import ports

    ports.open_port(port).close()


def run_esptool(argv, port, timeout_s, write):
    """Run esptool; its output goes to `write(text)` as it comes.

    Raises:
        UsageError: the port could not be opened; the chip is not the board's.
        FirmwareError: no bootloader answered, esptool failed or did not finish in time.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env)
    except OSError as error:
        raise FirmwareError("cannot run esptool: %s" % (error.strerror or error)) from None
    tail = bytearray()

    def relay():
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            data = proc.stdout.read1(4096)
            if not data:
                break
            tail.extend(data)
            del tail[:-TAIL_BYTES]
            text = decoder.decode(data)
            if text:
                write(text)

    reader = threading.Thread(target=relay, name="esptool-output", daemon=True)
    reader.start()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        _end(proc, reader)
        raise FirmwareError("esptool did not finish within %d s on %s; reset the board and try again"
                            % (timeout_s, port)) from None
    except BaseException:  # Ctrl-C: esptool stops with us
        _end(proc, reader)
        raise
    reader.join(5)
    proc.stdout.close()
    if proc.returncode != 0:
        raise describe_failure(port, tail.decode("utf-8", "replace"))


def _end(proc, reader):
    proc.kill()
    proc.wait()
    reader.join(5)
    proc.stdout.close()


def describe_failure(port, text):
    """The one-line error for what esptool printed when it failed."""
    opened = re.search(r"Could not open (.+?), the port is busy or doesn't exist\.\s*\((.*?)\)\s*$", text, re.M | re.S)
    if opened:
        reason = " ".join(opened.group(2).split())
        return UsageError("cannot open serial port %s: %s" % (port, reason))
    other = re.search(r"This chip is (\S+), not (\S+?)\. Wrong chip argument", text)
    if other:
        return UsageError("the chip on %s is an %s, not an %s: choose its board with --board "
                          "(see `tonebridge firmware boards`)" % (port, other.group(1), other.group(2)))
    if re.search(r"No serial data received|Failed to connect|Wrong boot mode", text):
        return FirmwareError("no ESP32 bootloader answers on %s: hold the board's BOOT button, press and release "
                             "RESET (EN), release BOOT, then run this again (or try --baud 115200)" % port)
    fatal = re.findall(r"A (?:fatal|serial exception) error occurred: (.*)", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    why = fatal[-1].strip() if fatal else (lines[-1] if lines else "no message")
    return FirmwareError("esptool failed on %s: %s" % (port, why))


def flash(board, port, image, erase=False, baud=DEFAULT_BAUD, write=None, boards_dir=None):
    """Write MicroPython's firmware `image` to `board` on `port` with esptool.

    Args:
        board: the board's name.
        port: the serial port (or "auto": the one ESP32 on USB).
        image: the firmware file (checked first, see check_image).
        erase: erase the whole flash first (the filesystem too: models, settings, tokens).
        baud: esptool's line rate.
        write: called with esptool's output as it comes (default: nothing).
    Returns:
        {"board", "port", "image", "bytes", "offset", "chip", "erased"}.
    Raises:
        UsageError: unknown board, the simulator, a bad image, a port that cannot be
            opened, the chip is not the board's.
        FirmwareError: esptool missing, no bootloader answering, esptool failed.
    """
    info = load_board(board, boards_dir)
    if info.esptool_chip is None:
        raise UsageError("the %s board runs on this computer: nothing to flash (start it with `tonebridge sim`)"
                         % info.name)
    size = check_image(info, image)
    esptool = esptool_command()
    from tonebridge.link import ports

    port = ports.resolve_port(port)
    _check_port(port)
    write = write or (lambda text: None)
    command = ["write-flash"] + (["--erase-all"] if erase else []) + ["-z", "0x%x" % info.flash_offset, image]
    run_esptool(esptool_argv(esptool, info, port, baud, *command), port,
                write_timeout_s(size, baud) + (ERASE_TIMEOUT_S if erase else 0), write)
    return {"board": info.name, "port": port, "image": image, "bytes": size, "offset": info.flash_offset,
            "chip": info.esptool_chip, "erased": bool(erase)}
