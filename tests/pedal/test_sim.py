"""The simulated pedal: real MicroPython processes, a real pty, real littlefs images.

The firmware's own `pedal.main` is swapped for tests/pedal/sim_fake/pedal/main.py
(compiled over the real firmware, so the real `simboard.boot` and the `simboard.flash`
block device run); $FAKE_PEDAL picks what the fake does after its portal line.
"""

import hashlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import serial

from tonebridge.boards import flashimage

from tonebridge.dev import simsetup
from tonebridge.dev import simulator as sim
from tonebridge.cli.common import EXIT_USAGE
from tonecore.errors import UsageError
from tonebridge.dev.simulator import SimError, SimulatedPedal

pytestmark = pytest.mark.timeout(60)

FAKE = os.path.join(os.path.dirname(__file__), "sim_fake")
API = "http://127.0.0.1:9/api/v1"
FS_BYTES = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """The firmware compiled once for the module, with the fake main."""
    return simsetup.stage_firmware("unix_sim", str(tmp_path_factory.mktemp("lib")), overlay=FAKE)


@pytest.fixture
def start_pedal(lib, tmp_path):
    """start_pedal(mode, flash=…) -> a started SimulatedPedal; all stopped afterwards."""
    pedals = []

    def start(mode="echo", flash=None, **options):
        pedal = SimulatedPedal(API, flash or str(tmp_path / "flash.img"), lib=lib, env={"FAKE_PEDAL": mode}, **options)
        pedals.append(pedal)
        return pedal.start(timeout=15)

    yield start
    for pedal in pedals:
        pedal.stop()


def mount_image(path):
    """The image at `path` mounted with littlefs-python (the geometry of simboard.flash)."""
    return flashimage.mount(path)


def read_text(fs, name):
    with fs.open(name, "r") as f:
        return f.read()


def test_a_blank_image_is_created_sparse_formatted_and_readable_on_the_host(start_pedal, tmp_path):
    flash = str(tmp_path / "data" / "pedal.img")
    pedal = start_pedal(flash=flash)
    assert os.path.getsize(flash) == FS_BYTES
    assert os.stat(flash).st_blocks * 512 < FS_BYTES // 4  # sparse: blank flash costs no disk
    assert any(line.startswith("flash: no filesystem, formatting") for line in pedal.console_lines())
    port = int(re.search(r":(\d+)/$", pedal.portal_url).group(1))
    assert pedal.portal_url == "http://127.0.0.1:%d/" % port
    pedal.stop()

    fs = mount_image(flash)
    assert read_text(fs, "boots.txt") == "1"
    settings = dict(line.split("=", 1) for line in read_text(fs, "settings.txt").splitlines())
    assert settings == {"api": API, "portal_host": "127.0.0.1", "portal_port": str(port), "fs_root": "/flash",
                        "board": "unix_sim", "ca_der": "None"}

    again = start_pedal(flash=flash)
    assert not any("formatting" in line for line in again.console_lines())
    again.stop()
    assert read_text(mount_image(flash), "boots.txt") == "2"


def test_the_ca_file_reaches_the_firmware_as_bytes(start_pedal, tmp_path):
    ca = tmp_path / "ca.der"
    ca.write_bytes(b"\x30\x82" + bytes(300))
    start_pedal(ca=str(ca)).stop()
    assert "ca_der=302\n" in read_text(mount_image(str(tmp_path / "flash.img")), "settings.txt")


def run_micropython(lib, script, flash):
    """Run `script` under MicroPython with the firmware library and TONEBRIDGE_FLASH."""
    env = dict(os.environ, MICROPYPATH=".frozen:" + lib, TONEBRIDGE_FLASH=flash)
    done = subprocess.run([simsetup.micropython_command(), "-X", "heapsize=128k", "-c", script], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pattern(size):
    return bytes((i * 7919 + (i >> 8)) & 255 for i in range(size))


def test_files_cross_between_micropython_and_the_host_byte_for_byte(lib, tmp_path):
    flash = str(tmp_path / "flash.img")
    simsetup.ensure_flash(flash, 4 * 1024 * 1024)
    run_micropython(lib, """
import os
from simboard import flash
flash.mount(flash.FileBlockDev(os.getenv("TONEBRIDGE_FLASH")), "/flash")
with open("/flash/pattern.bin", "wb") as f:
    for i in range(100000):
        f.write(bytes([(i * 7919 + (i >> 8)) & 255]))
""", flash)
    fs = mount_image(flash)
    with fs.open("pattern.bin", "rb") as f:
        assert f.read() == pattern(100000)

    written = os.urandom(50000)
    with fs.open("from_host.bin", "wb") as f:
        f.write(written)
    with open(flash, "r+b") as image:
        image.write(fs.context.buffer)
    out = run_micropython(lib, """
import os, hashlib, binascii
from simboard import flash
flash.mount(flash.FileBlockDev(os.getenv("TONEBRIDGE_FLASH")), "/flash")
with open("/flash/from_host.bin", "rb") as f:
    print(binascii.hexlify(hashlib.sha256(f.read()).digest()).decode())
""", flash)
    assert out.split() == [hashlib.sha256(written).hexdigest()]


def test_power_loss_mid_write_leaves_the_old_or_the_new_file_never_a_torn_one(start_pedal, tmp_path):
    flash = str(tmp_path / "flash.img")
    for cycle in range(4):
        pedal = start_pedal("writeloop", flash=flash)
        pedal.wait_for_console("generation %d" % (3 + 7 * cycle), timeout=10)
        pedal.kill()  # SIGKILL: littlefs gets no chance to finish anything
        assert pedal.returncode == -signal.SIGKILL
        fs = mount_image(flash)
        with fs.open("data.bin", "rb") as f:
            data = f.read()
        assert len(data) == 3 * 4096 + 100
        assert len(set(data)) == 1, "a torn file: %s" % sorted(set(data))
    start_pedal(flash=flash).stop()  # and the firmware still mounts it
    assert read_text(mount_image(flash), "boots.txt") == "5"


def test_the_serial_pty_relays_both_ways_binary_safe(start_pedal):
    pedal = start_pedal()
    with serial.Serial(pedal.serial_path, timeout=5) as port:
        port.write(b"ping\n")
        assert port.read_until(b"\n") == b"echo: ping\n"
        every_byte = bytes(b for b in range(256) if b != 0x0A) + b"\n"
        port.write(every_byte)
        assert port.read_until(b"\n") == b"echo: " + every_byte
        lines = [b"%04d " % i + b"\xa5" * 1000 + b"\n" for i in range(64)]  # 64 KB in one go
        port.write(b"".join(lines))
        received = b"".join(port.read_until(b"\n") for _ in lines)
        assert received == b"".join(b"echo: " + line for line in lines)
    assert pedal.wait_for_console("echo: ping", timeout=1) == "echo: ping"


def test_nobody_reading_the_pty_does_not_stall_the_firmware(start_pedal, tmp_path):
    pedal = start_pedal("flood")
    pedal.wait_for_console("flood: done", timeout=15)
    assert pedal.dropped_bytes > 900000  # the pty kept only what fits its buffer
    assert sum(line.startswith("log x") for line in pedal.console_lines()) >= sim.CONSOLE_LINES - 2
    pedal.kill()
    assert "after_flood.txt" in mount_image(str(tmp_path / "flash.img")).listdir("/")


def test_the_console_log_file_gets_every_line(start_pedal, tmp_path):
    log = tmp_path / "console.log"
    start_pedal("flood", log=str(log)).wait_for_console("flood: done", timeout=15)
    text = log.read_text()
    assert text.count("log x") == 10000 and "portal: listening on" in text


def test_a_firmware_that_stops_by_itself_is_reported_with_its_last_words(start_pedal):
    with pytest.raises(SimError) as caught:
        start_pedal("exit")
    assert "exited with status 3" in str(caught.value)
    assert "fake: cannot start the portal" in str(caught.value)


def test_the_flash_image_cannot_be_shared_by_two_pedals(start_pedal, tmp_path):
    start_pedal(flash=str(tmp_path / "flash.img"))
    with pytest.raises(UsageError, match="in use"):
        start_pedal(flash=str(tmp_path / "flash.img"))


# -- the `tonebridge sim` command ------------------------------------------------------


def tonebridge(*args):
    return [os.path.join(os.path.dirname(sys.executable), "tonebridge"), *args]


def read_lines(fd, count, timeout):
    """`count` lines from the pipe `fd`, or fewer if `timeout` seconds pass first."""
    data = b""
    while data.count(b"\n") < count:
        ready, _, _ = select.select([fd], [], [], timeout)
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            break
        data += chunk
    return data.decode().splitlines(keepends=True)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_command_prints_serial_and_portal_then_stops_cleanly_on_a_signal(tmp_path, stop_signal):
    env = dict(os.environ, FAKE_PEDAL="echo", TONEBRIDGE_API=API)
    proc = subprocess.Popen(tonebridge("sim", "--flash", str(tmp_path / "f.img"), "--overlay", FAKE),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        lines = read_lines(proc.stdout.fileno(), 2, timeout=20)
        assert len(lines) == 2, (lines, proc.stderr.read() if proc.poll() is not None else "")
        assert re.fullmatch(r"serial: /dev/pts/\d+\n", lines[0])
        port = int(re.fullmatch(r"portal: http://127\.0\.0\.1:(\d+)/\n", lines[1]).group(1))
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        proc.send_signal(stop_signal)
        assert proc.wait(10) == 0
        assert proc.stdout.read() == b""
        note = proc.stderr.read().decode()  # one line: how the heap is made up, nothing else
        assert re.fullmatch(r"sim: heap 128 KB for data \(the board's budget\) \+ \d+ KB of firmware bytecode, "
                            r"which a board keeps frozen in flash\n", note), note
        with pytest.raises(OSError):  # the firmware is gone with it
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_command_reports_a_firmware_that_stops_by_itself_and_exits_1(tmp_path):
    env = dict(os.environ, FAKE_PEDAL="exit")
    done = subprocess.run(tonebridge("sim", "--api", API, "--flash", str(tmp_path / "f.img"), "--overlay", FAKE),
                          capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == ("tonebridge: error: the simulated pedal exited with status 3: "
                           "fake: cannot start the portal\n")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--heap", "lots"], "not a size"),
        (["--heap", "1k"], "out of range"),
        (["--board", "nosuchboard"], "unknown board"),
        (["--board", "esp32_generic"], "hardware"),
        (["--flash", "{tmp}/file/pedal.img"], "cannot create the flash image"),
        (["--flash", "{tmp}/odd.img"], "not a multiple of 4096"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, args, fragment):
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "odd.img").write_bytes(bytes(5000))
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    done = subprocess.run(tonebridge("sim", "--api", API, "--flash", str(tmp_path / "f.img"), *args),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("tonebridge: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert fragment in done.stderr


@pytest.mark.parametrize("text, size", [("131072", 131072), ("128k", 131072), ("2M", 2097152), ("64KiB", 65536)])
def test_sizes(text, size):
    assert simsetup.parse_size(text) == size


def test_waiting_for_a_line_that_never_comes_times_out_with_the_last_line(start_pedal):
    pedal = start_pedal()
    with pytest.raises(SimError, match=r"no `never printed` line .* within 0\.2 s \(last line: portal: listening"):
        pedal.wait_for_console("never printed", timeout=0.2)


def test_the_pypi_micropython_has_no_frozen_firmware_and_a_bad_override_is_one_error(tmp_path, monkeypatch):
    assert simsetup.firmware_frozen(simsetup.micropython_command()) is False  # so the bytecode is added to the heap
    monkeypatch.setenv("TONEBRIDGE_MICROPYTHON", str(tmp_path / "nope"))
    with pytest.raises(SimError, match="TONEBRIDGE_MICROPYTHON=.*nope is not an executable"):
        simsetup.micropython_command()


def test_a_killed_host_leaves_no_pedal_behind(tmp_path):
    # `tonebridge sim` killed with SIGKILL has no chance to stop the firmware itself.  The
    # real firmware, signed out, sits quietly in its event loop: nothing would stop it.
    env = dict(os.environ, TONEBRIDGE_API=API)
    proc = subprocess.Popen(tonebridge("sim", "--flash", str(tmp_path / "f.img")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        lines = read_lines(proc.stdout.fileno(), 2, timeout=20)
        port = int(re.fullmatch(r"portal: http://127\.0\.0\.1:(\d+)/\n", lines[1]).group(1))
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break  # nothing listens: the firmware died with its host
        time.sleep(0.1)
    else:
        raise AssertionError("the firmware outlived the killed `tonebridge sim`")
