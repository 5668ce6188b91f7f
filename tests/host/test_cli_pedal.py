"""`tonebridge pedal` and `sim` beyond the link itself: whose disk is full in a sync,
the one free-space figure, and a console log without link frames."""

import errno
import json
import os
import re
import subprocess
import sys

import pytest
from link_helpers import NO_API, open_link, pedal_env, wav_bytes, write

from tonebridge.cli import pedal as pedal_cli
from tonebridge.dev.consolelog import ConsoleText, reads_as_text
from tonebridge.dev.simulator import SimulatedPedal, ensure_flash
from tonecore import link
from tonecore.errors import PedalRefused
from tonecore.frame import encode
from tonecore.records import Model

TONEBRIDGE = [sys.executable, "-m", "tonebridge"]


# --- pedal sync: this computer's disk or the pedal's flash --------------------------

class FakeLinkPedal:
    info = {"board": "unix_sim"}

    def __init__(self, refuse=None):
        self.refuse = refuse
        self.pushed = []

    def push(self, path, model_id, **fields):
        if self.refuse:
            raise self.refuse
        self.pushed.append(model_id)

        class Result:
            size, elapsed_s = 10, 0.1
        return Result()


class Done:
    size, sha256 = 10, "00" * 32


def model(model_id):
    return Model({"id": model_id, "name": "M%d" % model_id, "model_url": "http://x/m%d.nam" % model_id,
                  "size": "standard", "tone_id": 3})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TONEBRIDGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def test_a_full_disk_here_stops_the_sync_and_says_which_disk_and_what_was_kept(cache, monkeypatch):
    from tonebridge.api import downloads

    calls = []

    def download(conn, ref, target, force=False, on_progress=None):
        calls.append(ref.id)
        if ref.id == 2:  # the disk fills up during the second model: 3 KB of it on disk
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target + ".part", "wb") as f:
                f.write(b"x" * 3072)
            raise OSError(errno.ENOSPC, "No space left on device", target + ".part")
        return Done()

    monkeypatch.setattr(downloads, "download", download)
    pedal = FakeLinkPedal()
    sync = pedal_cli.PedalSync(None, pedal)
    sync._install(3, "nam", model(1))
    with pytest.raises(pedal_cli.HostDiskFull) as full:
        sync._install(3, "nam", model(2))
    text = str(full.value)
    assert text.startswith("this computer's disk is full (%s has " % (cache / "2"))
    assert " free): model 2 was not downloaded, 3 KB of it is kept in %s.part for the next sync" % (
        cache / "2" / "m2.nam") in text
    assert "stopped after pushing 1 models, which stay on the pedal" in text
    assert pedal.pushed == [1]


def test_a_full_pedal_fails_that_model_says_so_and_keeps_the_download(cache, monkeypatch):
    from tonebridge.api import downloads

    monkeypatch.setattr(downloads, "download", lambda *args, **kwargs: Done())
    refusal = PedalRefused("not enough flash for model 7: it needs 294 KB, 44 KB are free for models (64 KB more "
                           "are kept for the library's own writes)", link.E_NO_SPACE)
    sync = pedal_cli.PedalSync(None, FakeLinkPedal(refuse=refusal))
    sync._install(3, "nam", model(7))
    assert sync.report["failed"] == [{"id": 7, "error": "the pedal is full: %s; the download is kept here in %s"
                                      % (refusal, cache / "7" / "m7.nam")}]
    assert sync.report["stopped"] is None  # the sync goes on: a smaller model may fit


# --- the free space: one figure in `pedal info` and in a refusal ---------------------

def test_pedal_info_shows_the_space_a_push_is_refused_with(lib, tmp_path):
    flash = str(tmp_path / "small.img")
    ensure_flash(flash, 1024 * 1024)
    with SimulatedPedal(NO_API, flash, lib=lib, env=pedal_env()) as sim:
        sim.start()
        info = subprocess.run(TONEBRIDGE + ["pedal", "info", "--json", "--port", sim.serial_path],
                              capture_output=True, text=True, timeout=120)
        assert info.returncode == 0, info.stderr
        free = json.loads(info.stdout)["free_bytes"]
        text = subprocess.run(TONEBRIDGE + ["pedal", "info", "--port", sim.serial_path],
                              capture_output=True, text=True, timeout=120).stdout
        big = write(tmp_path / "big.wav", wav_bytes(free + 4096 + 44))
        with open_link(sim.serial_path) as pedal:
            with pytest.raises(PedalRefused) as refused:
                pedal.push(big, 700, platform="ir")
    said = re.search(r"(\d+) KB are free for models \((\d+) KB more are kept", str(refused.value))
    assert said, str(refused.value)
    assert int(said.group(1)) == free // 1024 and int(said.group(2)) == 64
    assert "%s free for models" % _human(free) in text


def _human(count):
    from tonebridge.cli.output import human_bytes

    return human_bytes(count)


# --- sim --log: text lines only -------------------------------------------------------

LINES = b"boot: hello\nusb: session\n"
FRAMES = bytes(encode(link.CONTROL, 1, b"abc\ndef\n\x00xyz")) + bytes(encode(link.ACK, 2, b"\n\n\x00\x01"))
AFTER = b"after the frames\nbin\x01ary\nok line\n"


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 64, 4096])
def test_the_console_text_leaves_frames_out_however_the_bytes_arrive(read_size):
    stream = LINES + FRAMES + AFTER + b"last"
    text = ConsoleText()
    out = b"".join(text.feed(stream[at:at + read_size]) for at in range(0, len(stream), read_size))
    out += text.feed(b" line\n") + text.close()
    assert out == b"boot: hello\nusb: session\nafter the frames\nok line\nlast line\n"


def test_a_damaged_frame_is_left_out_and_text_after_noise_is_kept():
    damaged = bytearray(FRAMES[:20])
    damaged[5] ^= 0xFF
    text = ConsoleText()
    out = text.feed(b"one\n" + bytes(damaged) + b"\x00two\n\x1b[2Jthree\n") + text.feed(b"four\n") + text.close()
    assert out == b"one\ntwo\nfour\n"  # "\x1b[2Jthree" is not a text line


def test_sim_log_holds_the_console_text_without_the_link_frames(lib, tmp_path):
    log = tmp_path / "console.log"
    with SimulatedPedal(NO_API, str(tmp_path / "flash.img"), lib=lib, env=pedal_env(), log=str(log)) as sim:
        sim.start()
        with open_link(sim.serial_path) as pedal:
            pedal.push(write(tmp_path / "cab.wav", wav_bytes(20_044, 1)), 42, platform="ir")
            pedal.models()
        sim.wait_for_console("usb: model 42", 20)
    data = log.read_bytes()
    assert b"\x00" not in data
    lines = data.split(b"\n")
    assert lines[-1] == b"" and all(reads_as_text(line) for line in lines)
    assert any(b"portal: listening on" in line for line in lines)
    assert any(b"usb: model 42" in line for line in lines)  # a line the pedal held during the session
