"""`tonebridge firmware flash`: MicroPython's image written with real esptool to a mock ESP
ROM bootloader on a pty (esp32-mock-bootloader), read back to see where it landed; and
every refusal before esptool runs (missing, empty, not an ESP image, another chip's, an
app image, too big, unknown board, esptool missing) as one line and an exit code."""

import hashlib
import importlib.metadata
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tonebridge.boards import flash
from tonebridge.boards.facts import CHIPS, load_board
from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_LOCAL, EXIT_USAGE

TONEBRIDGE = [sys.executable, "-m", "tonebridge"]
ESPTOOL = [sys.executable, "-m", "esptool"]
MOCK = [sys.executable, "-c", "import sys; from esp32_mock_bootloader.cli import main; sys.exit(main())"]
MOCK_FLASH_BYTES = 4 << 20  # the mock's flash, whatever the chip


def image_for(chip, size=200 * 1024, offset=None, seed=b"mp", table=True):
    """A whole firmware image as MicroPython's download page has it: 0xE9, the chip's id
    at byte 12, the partition table's magic where it lands at 0x8000 on the flash, and
    incompressible bytes between (so esptool's deflate cannot hide a wrong offset)."""
    if offset is None:
        offset = 0x1000 if chip == "esp32" else 0
    data = bytearray()
    block = seed
    while len(data) < size:
        block = hashlib.sha256(block).digest()
        data += block
    data = data[:size]
    data[0] = flash.ESP_IMAGE_MAGIC
    data[12:14] = CHIPS[chip][1].to_bytes(2, "little")
    if table:
        at = flash.PARTITION_TABLE_AT - offset
        data[at:at + 2] = flash.PARTITION_MAGIC
    return bytes(data)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


@pytest.fixture
def mock_bootloader(tmp_path):
    """Start a mock ROM bootloader for a chip on a pty; yields start(chip) -> the pty's path."""
    started = []

    def start(chip):
        port_file = tmp_path / ("mock-%s.port" % chip)
        proc = subprocess.Popen(MOCK + ["run", "--pty", "--chip", chip, "--port-file", str(port_file),
                                        "--timeout", "240"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, "the mock bootloader stopped (status %s)" % proc.returncode
            assert time.monotonic() < deadline, "the mock bootloader gave no port in 30 s"
            time.sleep(0.05)
        return port_file.read_text().strip()

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def esptool(chip, port, *command):
    done = subprocess.run(ESPTOOL + ["--chip", chip, "--port", port] + list(command), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def read_back(chip, port, offset, size, tmp_path):
    out = tmp_path / ("back-%x.bin" % offset)
    esptool(chip, port, "read-flash", "0x%x" % offset, str(size), str(out))
    return out.read_bytes()


def run_flash(*args, timeout=180):
    return subprocess.run(TONEBRIDGE + ["firmware", "flash"] + list(args), capture_output=True, text=True,
                          timeout=timeout)


# --- through real esptool ------------------------------------------------------------


def test_the_esp32_image_lands_at_0x1000_after_an_erase(mock_bootloader, tmp_path):
    port = mock_bootloader("esp32")
    # something at 0x0 first: --erase must wipe it, and the image must not start there
    esptool("esp32", port, "write-flash", "0x0", write(tmp_path / "old.bin", b"\x5a" * 4096))
    assert read_back("esp32", port, 0, 16, tmp_path) == b"\x5a" * 16
    image = image_for("esp32")
    done = run_flash("--board", "esp32_generic", "--port", port, "--image", write(tmp_path / "ESP32_GENERIC.bin", image),
                     "--erase")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Flashed ESP32_GENERIC.bin (%d bytes) at 0x1000 on %s after erasing the flash"
                                  % (len(image), port)), done.stdout
    assert "tonebridge firmware deploy --board esp32_generic --port %s" % port in done.stdout
    # esptool's own progress, streamed on stderr: the erase, then the write
    assert done.stderr.index("Flash memory erased successfully") < done.stderr.index("Hash of data verified")
    assert read_back("esp32", port, 0x1000, len(image), tmp_path) == image
    assert read_back("esp32", port, 0, 0x1000, tmp_path) == b"\xff" * 0x1000  # erased, and nothing written there
    after = 0x1000 + len(image)
    assert read_back("esp32", port, after, 4096, tmp_path) == b"\xff" * 4096


@pytest.mark.parametrize("board", ["esp32s3", "esp32c3"])
def test_the_s3_and_c3_images_land_at_0x0(mock_bootloader, tmp_path, board):
    chip = load_board(board).esptool_chip
    port = mock_bootloader(chip)
    image = image_for(chip, 100 * 1024)
    done = run_flash("--board", board, "--port", port, "--image", write(tmp_path / "mp.bin", image), "--baud", "115200")
    assert done.returncode == 0, done.stderr
    assert "at 0x0 on %s;" % port in done.stdout and "after erasing" not in done.stdout
    assert read_back(chip, port, 0, len(image), tmp_path) == image


def test_a_chip_that_is_not_the_boards_is_named(mock_bootloader, tmp_path):
    port = mock_bootloader("esp32")
    done = run_flash("--board", "esp32s3", "--port", port, "--image", write(tmp_path / "s3.bin", image_for("esp32s3")))
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr.splitlines()[-1] == ("tonebridge: error: the chip on %s is an ESP32, not an ESP32-S3: choose "
                                            "its board with --board (see `tonebridge firmware boards`)" % port)
    assert "Traceback" not in done.stderr


def test_no_bootloader_answering_says_how_to_enter_it(tmp_path, pty_port):
    _, path = pty_port  # a serial port nobody answers on: a board running its app, not in download mode
    done = run_flash("--board", "esp32_generic", "--port", path, "--image", write(tmp_path / "a.bin", image_for("esp32")),
                     timeout=120)
    assert done.returncode == EXIT_LOCAL, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("tonebridge: error: no ESP32 bootloader answers on %s: hold the board's BOOT button" % path)
    assert "Traceback" not in done.stderr


# --- refused before esptool runs -------------------------------------------------------


@pytest.fixture
def no_esptool_run(monkeypatch):
    """esptool must not run: any subprocess is a failure of the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("esptool ran: %r" % (args,))

    monkeypatch.setattr(flash.subprocess, "Popen", refuse)


def invoke(*args):
    return CliRunner().invoke(cli, ["firmware", "flash"] + list(args))


def one_line(result, code, *fragments):
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stderr.startswith("tonebridge: error: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def test_a_missing_or_empty_image_or_a_folder_is_refused(tmp_path, no_esptool_run):
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", str(tmp_path / "nope.bin")),
             EXIT_USAGE, "no such image file: %s" % (tmp_path / "nope.bin"))
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", write(tmp_path / "e.bin", b"")),
             EXIT_USAGE, "e.bin is empty; download the ESP32_GENERIC image (https://micropython.org/download/ESP32_GENERIC/)")
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", str(tmp_path)),
             EXIT_USAGE, "is a folder, not an image file")


def test_what_is_not_an_esp_image_is_refused(tmp_path, no_esptool_run):
    text = one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image",
                           write(tmp_path / "firmware.uf2", b"UF2\n" + bytes(40000))), EXIT_USAGE)
    assert "firmware.uf2 is not an ESP32 firmware image (its first byte is 0x55, not 0xE9)" in text


def test_an_image_for_another_chip_is_refused(tmp_path, no_esptool_run):
    s3 = write(tmp_path / "ESP32_GENERIC_S3.bin", image_for("esp32s3"))
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", s3), EXIT_USAGE,
             "is an image for the ESP32-S3, not for the ESP32 of esp32_generic; download the ESP32_GENERIC image")
    c3 = write(tmp_path / "c3.bin", image_for("esp32c3"))
    one_line(invoke("--board", "esp32s3", "--port", "/dev/null", "--image", c3), EXIT_USAGE,
             "is an image for the ESP32-C3, not for the ESP32-S3 of esp32s3; "
             "download the ESP32_GENERIC_S3-SPIRAM_OCT image (https://micropython.org/download/ESP32_GENERIC_S3/)")


def test_an_app_image_without_bootloader_and_partition_table_is_refused(tmp_path, no_esptool_run):
    # An ESP32 image made for 0x0 has its partition table 0x1000 too late for 0x1000: the
    # same check catches an image for the wrong offset.
    app = write(tmp_path / "micropython.bin", image_for("esp32", table=False))
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", app), EXIT_USAGE,
             "has no partition table at 0x8000 (byte 0x7000 of the file)", "micropython.bin?")
    at_zero = write(tmp_path / "for0.bin", image_for("esp32", offset=0))  # its table at byte 0x8000
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", at_zero), EXIT_USAGE,
             "no partition table at 0x8000")


def test_an_image_larger_than_the_flash_is_refused(tmp_path, no_esptool_run):
    path = write(tmp_path / "big.bin", image_for("esp32", 64 * 1024))
    with open(path, "r+b") as f:
        f.truncate((4 << 20) - 0x1000 + 1)  # one byte past the 4 MB flash from 0x1000 (sparse)
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", path), EXIT_USAGE,
             "big.bin is 4190209 bytes: from 0x1000 it does not fit the esp32_generic's 4 MB of flash")
    with open(path, "r+b") as f:
        f.truncate((4 << 20) - 0x1000)  # exactly fits: the check passes (and the port is refused next)
    one_line(invoke("--board", "esp32_generic", "--port", str(tmp_path / "ttyNONE"), "--image", path), EXIT_USAGE,
             "no serial port %s" % (tmp_path / "ttyNONE"))


def test_unknown_board_and_the_simulator_are_refused(tmp_path, no_esptool_run):
    image = write(tmp_path / "a.bin", image_for("esp32"))
    one_line(invoke("--board", "esp64", "--port", "/dev/null", "--image", image), EXIT_USAGE, "unknown board 'esp64'")
    one_line(invoke("--board", "unix_sim", "--port", "/dev/null", "--image", image), EXIT_USAGE,
             "the unix_sim board runs on this computer: nothing to flash")


def test_without_esptool_it_says_how_to_install_it(tmp_path, monkeypatch, no_esptool_run):
    real = importlib.metadata.version

    def version(name):
        if name == "esptool":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(flash.importlib.metadata, "version", version)
    image = write(tmp_path / "a.bin", image_for("esp32"))
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", image), EXIT_LOCAL,
             "tonebridge: error: esptool is not installed: pip install 'tonebridge[flash]'")
    monkeypatch.setattr(flash.importlib.metadata, "version", lambda name: "4.8.1" if name == "esptool" else real(name))
    one_line(invoke("--board", "esp32_generic", "--port", "/dev/null", "--image", image), EXIT_LOCAL,
             "esptool 4.8.1 is too old (5 or newer is needed): pip install -U 'tonebridge[flash]'")


# --- the facts it relies on ------------------------------------------------------------


def test_the_boards_offsets_chips_and_images():
    expected = {"esp32_generic": ("esp32", 0x1000, "ESP32_GENERIC"),
                "esp32s3": ("esp32s3", 0x0, "ESP32_GENERIC_S3-SPIRAM_OCT"),
                "esp32c3": ("esp32c3", 0x0, "ESP32_GENERIC_C3"),
                "unix_sim": (None, None, None)}
    for name, facts in expected.items():
        board = load_board(name)
        assert (board.esptool_chip, board.flash_offset, board.micropython_image) == facts, name
        json = board.to_json()
        assert (json["esptool_chip"], json["flash_offset"], json["micropython_image"]) == facts


def test_the_chip_ids_are_esptools():
    from esptool.targets import CHIP_DEFS

    for chip, (name, image_chip_id) in CHIPS.items():
        assert CHIP_DEFS[chip].IMAGE_CHIP_ID == image_chip_id, chip
        assert CHIP_DEFS[chip].CHIP_NAME == name, chip


def board_file(boards_dir, name, **changes):
    """boards_dir/name/board.py: esp32_generic's facts with `changes`; returns boards_dir."""
    with open(os.path.join(load_board("esp32_generic").directory, "board.py")) as f:
        text = f.read().replace('NAME = "esp32_generic"', "NAME = %r" % name)
    text += "".join("\n%s = %r\n" % item for item in changes.items())
    os.makedirs(os.path.join(boards_dir, name), exist_ok=True)
    with open(os.path.join(boards_dir, name, "board.py"), "w") as f:
        f.write(text)
    return boards_dir


def test_a_board_with_a_chip_but_no_offset_is_broken(tmp_path):
    from tonebridge.boards import FirmwareError

    boards_dir = board_file(str(tmp_path / "boards"), "odd", FLASH_OFFSET=None)
    with pytest.raises(FirmwareError, match="ESPTOOL_CHIP and FLASH_OFFSET go together"):
        load_board("odd", boards_dir)
    boards_dir = board_file(str(tmp_path / "boards"), "odd", ESPTOOL_CHIP="esp8266")
    with pytest.raises(FirmwareError, match="ESPTOOL_CHIP has an invalid value: 'esp8266'"):
        load_board("odd", boards_dir)
    boards_dir = board_file(str(tmp_path / "boards"), "odd", FLASH_OFFSET=0x800)
    with pytest.raises(FirmwareError, match="FLASH_OFFSET has an invalid value"):
        load_board("odd", boards_dir)


@pytest.mark.parametrize("text, kind, message", [
    ("Serial port /dev/ttyUSB9:\n\nA fatal error occurred: Could not open /dev/ttyUSB9, the port is busy or doesn't "
     "exist.\n([Errno 2] could not open port /dev/ttyUSB9: [Errno 2] No such file or directory: '/dev/ttyUSB9')\n",
     "UsageError", "cannot open serial port P: [Errno 2] could not open port /dev/ttyUSB9: [Errno 2] No such file or "
                   "directory: '/dev/ttyUSB9'"),
    ("Connecting....\nA fatal error occurred: Packet content transfer stopped (received 8 bytes)\n",
     "FirmwareError", "esptool failed on P: Packet content transfer stopped (received 8 bytes)"),
    ("", "FirmwareError", "esptool failed on P: no message"),
])
def test_esptools_failures_become_one_line(text, kind, message):
    error = flash.describe_failure("P", text)
    assert type(error).__name__ == kind and str(error) == message
