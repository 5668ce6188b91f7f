"""The crash counter and safe mode on the simulated pedal: crashes injected at boot
(simboard.faults, TONEBRIDGE_CRASH), restarts on the same flash, the counter read back
from the image on the host.

A start that ends with an exception is a reset for the next one (`<image>.reset`, as a
board's `machine.reset()`); a stopped or killed pedal comes back with a power-on.
"""

import json
import os
import shutil

import pytest
from pedal_helpers import mount, portal, read, sign_in, status, sync_finished, wait_status
from signin_helpers import configure

from tonebridge.boards.flashimage import make_image
from tonebridge.dev.emulator.server import EmulatorServer
from tonebridge.dev.simulator import SimError, SimulatedPedal, free_port, stage_firmware

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRASH = {"TONEBRIDGE_CRASH": "recover:RuntimeError"}  # safe mode skips recover(): it starts


@pytest.fixture
def emulator():
    with EmulatorServer() as server:
        configure(server.base_url, rate_limit=100000)
        yield server


def pedal_for(api, flash, lib, **env):
    return SimulatedPedal(api, str(flash), lib=lib, env=env)


def crash_counter(flash):
    return json.loads(read(mount(str(flash)), "crashes.json"))


def crash_at_boot(api, flash, lib, times, **env):
    """`times` starts that crash (each a reset for the next)."""
    for _ in range(times):
        with pytest.raises(SimError, match="crash injected at recover"):
            pedal_for(api, flash, lib, **dict(CRASH, **env)).start()


def test_three_crashes_in_a_row_start_safe_mode_and_a_finished_sync_ends_it(emulator, lib, tmp_path):
    api = emulator.base_url + "/api/v1"
    flash = tmp_path / "flash.img"
    with pedal_for(api, flash, lib, TONEBRIDGE_SYNC_ON_SIGN_IN="0") as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
    crash_at_boot(api, flash, lib, 3)
    assert crash_counter(flash) == {"count": 3, "last": "RuntimeError in recover"}

    with pedal_for(api, flash, lib, **CRASH) as pedal:  # the fault is still there
        pedal.start()
        now = status(pedal)
        assert now["safe_mode"] == "the last 3 starts crashed (RuntimeError in recover)"
        assert now["signed_in"] and now["sync"] is None  # no sync at boot
        assert portal(pedal).get("").status_code == 200
        console = "\n".join(pedal.console_lines())
        assert ("safe mode: the last 3 starts crashed (RuntimeError in recover); sync is off until you press Sync "
                "or restart") in console
        assert "sync: started" not in console

        assert portal(pedal).post("sync").status_code == 202  # the way out: a sync that finishes
        done = wait_status(pedal, sync_finished, 120, "sync")
        assert done["sync"]["state"] == "done" and done["safe_mode"] is None, done["sync"]
        pedal.wait_for_console("safe mode: off (a sync finished); the next start is a normal one", 5)
        assert crash_counter(flash)["count"] == 0

    with pedal_for(api, flash, lib) as pedal:  # the fault is gone too: a normal start syncs
        pedal.start()
        again = wait_status(pedal, sync_finished, 120, "sync at boot")
        assert again["safe_mode"] is None and again["sync"]["state"] == "done"


def test_a_clean_run_in_safe_mode_clears_the_counter_and_a_power_on_forgives(lib, tmp_path):
    api = "http://127.0.0.1:9/api/v1"
    flash = tmp_path / "flash.img"
    crash_at_boot(api, flash, lib, 3)
    with pedal_for(api, flash, lib, TONEBRIDGE_CLEAN_RUN_S="0.5", **CRASH) as pedal:
        pedal.start()
        assert status(pedal)["safe_mode"] == "the last 3 starts crashed (RuntimeError in recover)"
        pedal.wait_for_console("pedal: ran cleanly for 0 s; the crash counter is cleared", 10)
        assert status(pedal)["safe_mode"]  # this start stays in safe mode until a sync or a restart
    assert crash_counter(flash) == {"count": 0, "last": None}

    # the next start after a reset (not a power-on) is a normal one: the counter was cleared
    open(str(flash) + ".reset", "w").close()
    with pedal_for(api, flash, lib) as pedal:
        pedal.start()
        assert status(pedal)["safe_mode"] is None

    # two crashes, then the pedal is unplugged: a power-on counts from 0 again
    crash_at_boot(api, flash, lib, 2)
    os.remove(str(flash) + ".reset")  # powered off and on
    crash_at_boot(api, flash, lib, 2)
    assert crash_counter(flash)["count"] == 2
    with pedal_for(api, flash, lib) as pedal:
        pedal.start()
        assert status(pedal)["safe_mode"] is None


def test_a_power_cut_between_crashes_never_ends_in_a_loop(lib, tmp_path):
    """Power cuts while a crash-looping pedal starts: every run of three crashes ends in
    safe mode, however the cuts fall."""
    api = "http://127.0.0.1:9/api/v1"
    flash = tmp_path / "flash.img"
    for _ in range(2):
        crash_at_boot(api, flash, lib, 3)
        pedal = pedal_for(api, flash, lib, **CRASH)
        pedal.start()
        assert status(pedal)["safe_mode"]
        pedal.kill()  # a power cut in safe mode: the next start is a power-on (counted from 0)
        assert crash_counter(flash)["count"] == 4


# -- the board entry (pedal.main.boot) -------------------------------------------------------

@pytest.fixture(scope="module")
def board_lib(tmp_path_factory):
    """The firmware with the stand-in `network` module (the board entry joins Wi-Fi)."""
    overlay = tmp_path_factory.mktemp("overlay")
    shutil.copy(os.path.join(ROOT, "tests", "pedal", "board_fakes", "network.py"), overlay / "network.py")
    shutil.copy(os.path.join(ROOT, "tests", "pedal", "board_fakes", "ntptime.py"), overlay / "ntptime.py")
    folder = str(tmp_path_factory.mktemp("lib"))
    return stage_firmware("unix_sim", folder, overlay=str(overlay))


def board_flash(tmp_path, port, count, last):
    flash = tmp_path / "flash.img"
    make_image(str(flash), {"config.json": b'{"port": %d}' % port,
                            "crashes.json": json.dumps({"count": count, "last": last}).encode()}, block_count=1024)
    open(str(flash) + ".reset", "w").close()  # the board reset itself after its last crash
    return flash


def test_the_board_entry_starts_in_safe_mode_and_does_not_reset_when_that_crashes_too(board_lib, tmp_path):
    port = free_port()
    flash = board_flash(tmp_path, port, 3, "MemoryError in recover")
    with pedal_for("http://127.0.0.1:9/api/v1", flash, board_lib, TONEBRIDGE_BOOT="board") as pedal:
        pedal.start()
        assert status(pedal)["safe_mode"] == "the last 3 starts crashed (MemoryError in recover)"

    flash = board_flash(tmp_path, port, 3, "MemoryError in recover")
    pedal = pedal_for("http://127.0.0.1:9/api/v1", flash, board_lib, TONEBRIDGE_BOOT="board",
                      TONEBRIDGE_CRASH="serve:MemoryError")  # safe mode serves the page: it crashes again
    with pytest.raises(SimError, match="exited with status 0"):
        pedal.start()
    console = "\n".join(pedal.console_lines())
    assert "safe mode: the last 3 starts crashed (MemoryError in recover)" in console
    assert ("pedal: stopped by MemoryError('crash injected at serve (TONEBRIDGE_CRASH)',) in safe mode; not "
            "restarting") in console
    assert "restarting in 5 s" not in console and not os.path.exists(str(flash) + ".reset")
    assert crash_counter(flash) == {"count": 4, "last": "MemoryError in serve"}
