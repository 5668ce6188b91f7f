"""Before its first frame the host finds out what answers on the console
(tonebridge.link.console): the link service, or a MicroPython REPL, friendly or raw,
where it starts the pedal again, or a board without the firmware.  First the logic
alone (ServiceStart, bytes in and out), then against the simulated pedal and a bare
MicroPython on the same console plumbing."""

import os
import subprocess
import sys
import time

import httpx
import pytest
import serial
from link_helpers import NO_API

from tonebridge.dev.simulator import SimulatedPedal
from tonebridge.link.console import (NOT_HERE, OK_MS, PROBE_MS, PROBE_TRIES, REPROBE_MS, START_CODE, START_MS,
                                     FirmwareMissing, ServiceStart)
from tonecore.errors import LinkBroken, LinkError
from tonecore.linkconsole import PROBE, PROBE_ANSWER, RAW_BANNER

TONEBRIDGE = [sys.executable, "-m", "tonebridge"]
STEP_S = 30
FRIENDLY = (b"\r\nMicroPython v1.24.1 on 2024-11-29; ESP32 module with ESP32\r\n"
            b"Type \"help()\" for more information.\r\n>>> ")


def drain(start):
    sent = start.to_write()
    start.written(len(sent))
    return sent


def at_the_raw_repl(start, now=0):
    """Feed a friendly REPL's answer to the probe (split across reads): the banner."""
    assert drain(start) == PROBE
    answer = FRIENDLY + b"\r\n>>> \r\n" + RAW_BANNER
    start.receive(answer[:30], now)
    start.receive(answer[30:], now)
    assert start.at_repl and drain(start) == START_CODE + b"\x04"


def test_the_service_answers_the_probe():
    start = ServiceStart(0)
    assert drain(start) == PROBE
    start.receive(b"[  12.000] sync: done\r\n\r\ntonebridge link\r\n\x00", 5)
    assert start.done() and start.result() == "service" and not start.at_repl


def test_at_a_repl_the_pedal_is_started_through_the_raw_repl():
    start = ServiceStart(0)
    at_the_raw_repl(start)
    start.receive(b"O", 10)
    start.receive(b"K[   0.100] pedal: unix_sim, 0 models installed\r\n", 10)
    start.tick(10)
    assert drain(start) == PROBE  # probing while the pedal starts
    start.tick(400)
    assert drain(start) == b""
    start.tick(10 + 500)
    assert drain(start) == PROBE
    start.receive(b"[   0.600] usb: link ready\r\n" + PROBE_ANSWER, 700)
    assert start.done() and start.result() == "started"


def test_nothing_answering_is_left_to_the_hello():
    start = ServiceStart(0)
    sent = drain(start)
    for now in range(0, PROBE_TRIES * PROBE_MS + 1, 100):
        start.receive(b"\x00\x13garbage", now)
        start.tick(now)
        sent += drain(start)
    assert sent == PROBE * PROBE_TRIES
    assert start.done() and start.result() is None


def test_a_board_without_the_firmware_is_named_and_left_at_its_friendly_repl():
    start = ServiceStart(0)
    at_the_raw_repl(start)
    start.receive(b"OK\x04Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\n"
                  b"ImportError: no module named 'pedal'\r\n\x04>", 20)
    assert not start.done() and drain(start) == b"\r\x02"
    assert start.done()
    with pytest.raises(FirmwareMissing) as missing:
        start.result()
    assert str(missing.value) == NOT_HERE


@pytest.mark.parametrize("error, words", [
    (b"AttributeError: 'module' object has no attribute 'resume'\r\n", "older than this tonebridge"),
    (b"OSError: [Errno 28] ENOSPC\x1b[2J\r\n", "stopped as it started: OSError: [Errno 28] ENOSPC [2J"),
])
def test_a_firmware_that_does_not_start_says_why_in_one_line(error, words):
    start = ServiceStart(0)
    at_the_raw_repl(start)
    start.receive(b"OK[   0.1] pedal: starting\r\n\x04Traceback (most recent call last):\r\n" + error, 20)
    start.tick(500)
    assert not start.done()
    start.tick(1100)  # the second 0x04 never came
    drain(start)
    with pytest.raises(LinkError) as failed:  # exit 7, as every pedal error
        start.result()
    assert words in str(failed.value) and "\x1b" not in str(failed.value) and "\n" not in str(failed.value)


def test_a_repl_that_does_not_run_the_code_or_a_pedal_that_never_answers_is_an_error():
    start = ServiceStart(0)
    at_the_raw_repl(start)
    start.tick(OK_MS)
    with pytest.raises(LinkBroken, match="did not take"):
        start.result()
    start = ServiceStart(0)
    at_the_raw_repl(start)
    start.receive(b"OK", 0)
    probes = 0
    for now in range(0, START_MS + 1000, 100):
        start.tick(now)
        probes += drain(start).count(PROBE)
    assert start.done() and probes == START_MS // REPROBE_MS
    with pytest.raises(LinkBroken, match="did not start its USB service within 30 s"):
        start.result()


# -- against the simulated pedal ------------------------------------------------------


def cli(port, *args):
    return subprocess.run(TONEBRIDGE + ["pedal"] + list(args) + ["--port", port], capture_output=True, text=True,
                          timeout=STEP_S)


def type_keys(path, *writes):
    """Open the console as a terminal would and type `writes`, 0.4 s apart (the pedal
    takes a 0x03 for Ctrl-C after a quiet line)."""
    with serial.Serial(path, 115200, exclusive=True, timeout=0, write_timeout=5) as port:
        for keys in writes:
            time.sleep(0.4)
            port.write(keys)
        time.sleep(0.3)


@pytest.mark.parametrize("keys, prompt", [
    ((b"\x03",), '>>> '),  # a person's Ctrl-C: the friendly REPL
    ((b"\r\x03", b"\r\x01"), "raw REPL; CTRL-B to exit"),  # a killed mpremote: the raw REPL
])
def test_the_host_starts_the_pedal_again_from_its_repl(pedal, keys, prompt):
    type_keys(pedal.serial_path, *keys)
    pedal.wait_for_console("KeyboardInterrupt", 10)
    since = pedal.console_seq
    info = cli(pedal.serial_path, "info")
    assert info.returncode == 0, info.stderr
    assert "unix_sim on" in info.stdout
    assert info.stderr == "The pedal is at the MicroPython REPL: starting the tonebridge firmware there.\n"
    pedal.wait_for_console("usb: link ready", 10, since=since)
    pedal.wait_for_console("portal: listening on " + pedal.portal_url.rstrip("/"), 10, since=since)
    assert httpx.get(pedal.portal_url + "status.json", timeout=10).json()["board"] == "unix_sim"  # the same port again
    assert pedal.returncode is None
    again = cli(pedal.serial_path, "ls")  # the service answers the probe: nothing to start
    assert again.returncode == 0 and again.stderr == "", again.stderr


def test_a_micropython_board_without_the_firmware_is_told_to_deploy_it(tmp_path):
    # a bare MicroPython on the simulator's console plumbing: its "boot" only says
    # where a portal would be (the simulator waits for that line), then the REPL
    bare = tmp_path / "bare"
    (bare / "simboard").mkdir(parents=True)
    (bare / "simboard" / "__init__.py").write_text("")
    (bare / "simboard" / "boot.py").write_text(
        "import os\nos.putenv('MICROPYINSPECT', '1')\nprint('portal: listening on http://127.0.0.1:9/')\n")
    board = SimulatedPedal(NO_API, str(tmp_path / "flash.img"), lib=str(bare), total_heap=256 * 1024)
    with board:
        board.start()
        done = cli(board.serial_path, "info")
        assert done.returncode == 7
        assert done.stderr.splitlines()[-1] == "tonebridge: error: " + NOT_HERE
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert board.returncode is None
        # left at its friendly REPL
        with serial.Serial(board.serial_path, 115200, exclusive=True, timeout=0, write_timeout=5) as port:
            port.write(b"print(6 * 7)\r")
            seen = b""
            deadline = time.monotonic() + 10
            while b"42" not in seen and time.monotonic() < deadline:
                seen += port.read(256)
                time.sleep(0.02)
        assert b"42" in seen
        assert os.path.exists(board.flash)
