"""The console shared with MicroPython's tools (docs/protocol.md §1), end to end: the real
`mpremote` and `tonebridge pedal` take turns on one simulated pedal, pushes killed
mid-transfer included, and neither ever waits on the other.

Every subprocess step is bounded (STEP_S); the simulated pedal must be alive after
each one, and its library must verify at the end.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from link_helpers import nam_bytes, sha, wav_bytes, write

from tonebridge.boards.flashimage import check_library

TONEBRIDGE = [sys.executable, "-m", "tonebridge"]
MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")
STEP_S = 30  # no step takes a second when all is well; a hang fails the step, not the run
ROUNDS = 20
STARTED = "The pedal is at the MicroPython REPL: starting the tonebridge firmware there."


def run(argv, pedal, what):
    """Run `argv` to its end within STEP_S; the pedal must still be running after it."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_S)
    except subprocess.TimeoutExpired:
        pytest.fail("%s hung for %d s; the pedal's console ends with:\n%s"
                    % (what, STEP_S, "\n".join(pedal.console_lines()[-15:])))
    assert pedal.returncode is None, "the pedal died during %s: %s" % (what, pedal.console_lines()[-15:])
    return done


def mpremote(pedal, *args):
    """mpremote with `resume`: the unix port has no soft reset (it would end the process)."""
    done = run([MPREMOTE, "connect", pedal.serial_path, "resume"] + list(args), pedal, "mpremote " + " ".join(args))
    assert done.returncode == 0, "mpremote %s: %s%s" % (" ".join(args), done.stdout, done.stderr)
    return done.stdout


def pedal_cli(pedal, *args):
    argv = TONEBRIDGE + ["pedal"] + list(args) + ["--port", pedal.serial_path]
    done = run(argv, pedal, "tonebridge pedal " + args[0])
    assert done.returncode == 0, "tonebridge pedal %s: %s%s" % (args[0], done.stdout, done.stderr)
    return done


def killed_push(pedal, path, model_id):
    """Start a push of `path` and SIGKILL the CLI mid-transfer: once the pedal has tens
    of KB of it unread (DATA is flowing).  True when it was killed mid-transfer."""
    proc = subprocess.Popen(TONEBRIDGE + ["pedal", "push", path, "--id", str(model_id), "--port", pedal.serial_path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + STEP_S
    try:
        while proc.poll() is None and pedal.rx_pending() < 48 * 1024 and time.monotonic() < deadline:
            time.sleep(0.002)
        flowing = proc.poll() is None and pedal.rx_pending() >= 48 * 1024
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(STEP_S)
    assert pedal.returncode is None
    return flowing


def test_mpremote_and_tonebridge_take_turns_on_one_pedal_20_times(pedal, tmp_path):
    small = write(tmp_path / "small.nam", nam_bytes(20_000, 1))
    big_data = wav_bytes(4_000_044, 2)  # noise: a push of it takes ~0.2 s on the pty, long enough to cut
    big = write(tmp_path / "big.wav", big_data)
    cut = resumed = started = 0
    for number in range(ROUNDS):
        if number % 4 == 1:  # straight after the kill, mpremote: the pedal is still in that session
            cut += killed_push(pedal, big, 77)
        assert mpremote(pedal, "exec", "print(6 * 7)").strip() == "42"
        assert "simboard" in mpremote(pedal, "ls")  # the unix port's working folder: the staged firmware
        note = write(tmp_path / "note.txt", b"round %d\n" % number)
        mpremote(pedal, "cp", note, ":/flash/note.txt")
        back = tmp_path / ("back%d.txt" % number)
        mpremote(pedal, "cp", ":/flash/note.txt", str(back))
        assert back.read_bytes() == b"round %d\n" % number
        info = pedal_cli(pedal, "info", "--json")  # the pedal is at the REPL: the host starts it
        started += STARTED in info.stderr
        assert json.loads(info.stdout)["board"] == "unix_sim"
        # right after a clean session (no pause): mpremote gets in
        assert mpremote(pedal, "exec", "import os; print(len(os.listdir('/flash/models')))").strip().isdigit()
        path, model_id = (big, 77) if number % 4 == 2 else (small, 5)
        pushed = pedal_cli(pedal, "push", path, "--id", str(model_id))
        resumed += "resumed at byte" in pushed.stdout
        assert "Installed model %d" % model_id in pushed.stdout
    assert pedal.returncode is None
    assert started == ROUNDS  # every info found the REPL mpremote had left, and started the pedal
    assert cut >= 3 and resumed >= 3, (cut, resumed)  # the kills cut transfers, and the .part stayed resumable
    models = json.loads(pedal_cli(pedal, "ls", "--json").stdout)
    assert {(m["id"], m["sha256"]) for m in models} == {(5, sha(nam_bytes(20_000, 1))), (77, sha(big_data))}
    pedal.stop()
    manifest, _ = check_library(pedal.flash)
    assert sorted(entry["id"] for entry in manifest["models"]) == [5, 77]
