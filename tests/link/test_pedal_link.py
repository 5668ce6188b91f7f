"""The USB serial link end to end: the host's PedalLink and CLI against the real firmware
(the simulated pedal: MicroPython unix port, littlefs image, console on a pty).

After each scenario the flash image is checked on the host with littlefs-python: every
model the manifest lists is complete and verifies, and no push is left half-installed.
"""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from link_helpers import NO_API, nam_bytes, open_link, pedal_env, sha, wav_bytes, write

from tonebridge.boards.flashimage import check_library
from tonebridge.dev.linkemu import LinkEmulator
from tonebridge.dev.simulator import SimulatedPedal
from tonecore import link
from tonecore.errors import LinkBroken, PedalRefused

TONEBRIDGE = [sys.executable, "-m", "tonebridge"]


def cli(*args, timeout=120):
    return subprocess.run(TONEBRIDGE + ["pedal"] + list(args), capture_output=True, text=True, timeout=timeout)


def test_push_list_activate_delete_and_the_flash_agrees(pedal, tmp_path):
    nam = nam_bytes(150_000, 1)
    wav = wav_bytes(96_044, 2)
    with open_link(pedal.serial_path) as link_:
        assert link_.info["board"] == "unix_sim" and link_.info["protocol"] == link.VERSION
        first = link_.push(write(tmp_path / "crunch.nam", nam), 501, name="Crunch", platform="nam", tone_id=9,
                           size_class="standard", updated_at="2026-01-02T03:04:05Z")
        second = link_.push(write(tmp_path / "cab.wav", wav), 502, name="Cab", platform="ir")
        assert (first.size, first.sha256, first.resumed_from) == (len(nam), sha(nam), 0)
        assert first.compressed_frames > 0  # JSON weights deflate well: sent compressed
        assert second.sha256 == sha(wav) and second.compressed_frames == 0  # noise does not
        models, active = link_.models()
        assert [(m.id, m.name, m.bytes, m.sha256) for m in models] == [
            (501, "Crunch", len(nam), sha(nam)), (502, "Cab", len(wav), sha(wav))]
        assert active == 501 and models[0].updated_at == "2026-01-02T03:04:05Z" and models[0].tone_id == 9
        link_.activate(502)
        assert link_.models()[1] == 502
        link_.delete(501)
        assert [m.id for m in link_.models()[0]] == [502]
        with pytest.raises(PedalRefused) as refused:
            link_.delete(501)
        assert refused.value.code == link.E_NOT_FOUND and "not installed" in str(refused.value)
    # the session's log lines were held, then printed; nothing else is lost
    pedal.wait_for_console(lambda line: "usb: session closed" in line, 10)
    console = "\n".join(pedal.console_lines())
    assert "usb: model 501 installed: Crunch" in console and "usb: model 502 is active" in console
    pedal.stop()
    manifest, files = check_library(pedal.flash)
    assert [(e["id"], e["sha256"]) for e in manifest["models"]] == [(502, sha(wav))]
    assert manifest["active"] == 502
    assert sorted(files) == ["502-%s.wav" % sha(wav)[:8]]  # the deleted model's file is gone too


def test_bad_bytes_are_refused_at_commit_and_nothing_is_left(pedal, tmp_path):
    broken = b'{"version": "0.5.4", "weights": [0.1, 0.2'  # a NAM file cut short
    with open_link(pedal.serial_path) as link_:
        with pytest.raises(PedalRefused) as refused:
            link_.push(write(tmp_path / "cut.nam", broken), 600, platform="nam")
        assert refused.value.code == link.E_FORMAT
        assert link_.models()[0] == []
        assert link_.stat(600, len(broken), bytes.fromhex(sha(broken))) == (0, False)  # .part deleted
    pedal.stop()
    manifest, files = check_library(pedal.flash)
    assert manifest["models"] == [] and files == {}


def test_a_model_too_large_for_the_board_or_the_flash_is_refused_up_front(lib, tmp_path):
    # a 1 MiB flash: a 2 MB model cannot fit
    from tonebridge.dev.simulator import ensure_flash

    ensure_flash(str(tmp_path / "small.img"), 1024 * 1024)
    sim = SimulatedPedal(NO_API, str(tmp_path / "small.img"), lib=lib, env=pedal_env())
    with sim:
        sim.start()
        big = write(tmp_path / "big.wav", wav_bytes(2_000_044))
        with open_link(sim.serial_path) as link_:
            with pytest.raises(PedalRefused) as refused:
                link_.push(big, 700, platform="ir")
            assert refused.value.code == link.E_NO_SPACE and "not enough flash" in str(refused.value)
            small = nam_bytes(20_000)
            assert link_.push(write(tmp_path / "small.nam", small), 701).sha256 == sha(small)


def test_a_push_cut_by_a_killed_host_resumes_where_the_flash_ends(lib, tmp_path):
    # behind an emulated 921600-baud UART the 400 KB push takes ~4.5 s: kill the host at ~2 s
    data = wav_bytes(400_044, 5)
    path = write(tmp_path / "ir.wav", data)
    sim = SimulatedPedal(NO_API, str(tmp_path / "flash.img"), lib=lib, env=pedal_env(TONEBRIDGE_LINK="uart"))
    with sim:
        sim.start()
        with LinkEmulator(sim.serial_path, baud=921600, rx_buffer=260, rx_pending=sim.rx_pending) as emu:
            proc = subprocess.Popen(TONEBRIDGE + ["pedal", "push", path, "--id", "800", "--port", emu.host_path],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(2.0)
            assert proc.poll() is None
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert emu.stats()["overflow_dropped"] == 0  # credit kept the 260-byte ring from overflowing
            with open_link(emu.host_path) as link_:  # the pedal noticed nothing: a new session
                result = link_.push(path, 800, platform="ir")
            assert result.sha256 == sha(data)
            assert 50_000 < result.resumed_from < len(data) and result.sent == len(data) - result.resumed_from
        sim.stop()
    manifest, _ = check_library(sim.flash)
    assert [(e["id"], e["sha256"]) for e in manifest["models"]] == [(800, sha(data))]


def test_a_pulled_cable_then_the_same_push_again_resends_at_most_a_window(lib, tmp_path):
    data = wav_bytes(300_044, 6)  # incompressible: the wire carries every byte
    path = write(tmp_path / "m.wav", data)
    sim = SimulatedPedal(NO_API, str(tmp_path / "flash.img"), lib=lib, env=pedal_env(TONEBRIDGE_LINK="uart"))
    with sim:
        sim.start()
        with LinkEmulator(sim.serial_path, baud=921600, rx_buffer=260, rx_pending=sim.rx_pending) as emu:
            first = open_link(emu.host_path)
            window = first.info["window"]
            emu.disconnect_after(150_000)
            with pytest.raises(LinkBroken) as cut:
                first.push(path, 801)
            assert "unplugged" in str(cut.value) or "stopped answering" in str(cut.value)
            sent = first.transfer.high
            first.port.close()
            with open_link(emu.reconnect()) as again:
                result = again.push(path, 801)
            assert result.sha256 == sha(data)
            assert 0 <= sent - result.resumed_from <= window


def test_cli_push_ls_activate_rm_and_errors(pedal, tmp_path):
    nam = write(tmp_path / "lead.nam", nam_bytes(60_000, 3))
    port = ["--port", pedal.serial_path]
    done = cli("push", nam, "--id", "901", "--name", "Lead", "--activate", *port)
    assert done.returncode == 0, done.stderr
    assert "Installed model 901 on the pedal" in done.stdout and "now active" in done.stdout
    listed = cli("ls", "--json", *port)
    assert listed.returncode == 0
    assert '"name": "Lead"' in listed.stdout and '"active": true' in listed.stdout
    info = cli("info", *port)
    assert info.returncode == 0 and "unix_sim" in info.stdout and "1 models installed" in info.stdout
    made = cli("activate", "Lead", "--json", *port)
    assert made.returncode == 0 and json.loads(made.stdout) == {"id": 901, "active": True}
    gone = cli("rm", "Lead", *port)
    assert gone.returncode == 0 and "Deleted model 901" in gone.stdout
    missing = cli("rm", "Lead", *port)
    assert missing.returncode == 7 and missing.stderr.startswith("tonebridge: error: no model named")
    nothing = cli("rm", "4242", *port)
    assert nothing.returncode == 7 and "not installed" in nothing.stderr and "Traceback" not in nothing.stderr
    no_port = cli("ls", "--port", str(tmp_path / "ttyNOPE"))
    assert no_port.returncode == 2 and "no serial port" in no_port.stderr


def test_ctrl_c_leaves_the_firmware_for_the_repl_where_mpremote_works(pedal, tmp_path):
    with open_link(pedal.serial_path) as link_:
        link_.push(write(tmp_path / "a.nam", nam_bytes(10_000)), 42)
    time.sleep(0.4)  # the line is quiet: a Ctrl-C now is for the REPL
    mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
    done = subprocess.run([mpremote, "connect", pedal.serial_path, "resume", "exec",
                           "import os; print(sorted(os.listdir('/flash/models')))"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "42-" in done.stdout and ".nam" in done.stdout
    assert any("KeyboardInterrupt" in line for line in pedal.console_lines())


def test_pedal_sync_downloads_favorites_here_and_pushes_what_the_pedal_lacks(lib, tmp_path):
    from signin_helpers import configure, model_info, sign_in_home

    from tonebridge.dev.emulator.server import EmulatorServer

    with EmulatorServer() as emulator:
        configure(emulator.base_url, rate_limit=100000)  # three full listings: not a rate-limit test
        sign_in_home(emulator.base_url, tmp_path / "home")
        env = dict(os.environ, TONEBRIDGE_HOME=str(tmp_path / "home"), TONEBRIDGE_API=emulator.base_url,
                   TONEBRIDGE_CACHE=str(tmp_path / "cache"))
        sim = SimulatedPedal(NO_API, str(tmp_path / "flash.img"), lib=lib, env=pedal_env())

        def sync():
            done = subprocess.run(TONEBRIDGE + ["pedal", "sync", "--port", sim.serial_path, "--json"], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr + "\n".join(sim.console_lines()[-15:])
            return json.loads(done.stdout)

        with sim:
            sim.start()
            first = sync()
            pushed = {item["id"] for item in first["pushed"]}
            assert len(pushed) >= 20 and first["failed"] == [] and first["up_to_date"] == []
            again = sync()
            assert again["pushed"] == [] and set(again["up_to_date"]) == pushed
            changed = httpx.post(emulator.base_url + "/_emulator/models/1008/update", timeout=5).json()
            third = sync()
            assert [item["id"] for item in third["pushed"]] == [1008]
            sim.stop()
        manifest, _ = check_library(sim.flash)
        assert {e["id"] for e in manifest["models"]} == pushed
        for entry in manifest["models"]:
            assert entry["sha256"] == model_info(emulator.base_url, entry["id"])["sha256"]
        assert [e["sha256"] for e in manifest["models"] if e["id"] == 1008] == [changed["sha256"]]
