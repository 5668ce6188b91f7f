"""Pushes over a faulty link never leave a corrupt or half-installed model.

At least 200 pushes into one simulated pedal (the real firmware; UART link settings,
its 260-byte receive ring modelled by the link emulator), each with a random fault:
dropped bytes, bit flips at a 1e-4 error rate, a pulled cable, the host process
killed mid-transfer, the pedal's power cut.  Every push ends installed-and-verified or
cleanly failed (LinkError, or a killed host); a failed push is pushed again and then
resumes.  After every push the pedal's list must hold, for each model, a version that
was really pushed; at every power cut the flash image is checked on the host with
littlefs-python (every manifest entry complete, SHA-256 right, no stray files).
"""

import random
import signal
import subprocess
import sys
import time

import pytest
import serial
from link_helpers import NO_API, nam_bytes, pedal_env, sha, wav_bytes, write

from tonebridge.boards.flashimage import check_library
from tonebridge.dev.linkemu import LinkEmulator
from tonebridge.link.session import PedalLink
from tonebridge.dev.simulator import SimulatedPedal
from tonecore.errors import LinkError

PUSHES = 200
IDS = list(range(7001, 7013))
FAULTS = ("clean", "drops", "flips", "unplug", "host_killed", "power_cut")
WEIGHTS = (3, 4, 4, 3, 1, 1)


class Bench:
    """The pedal, the emulated link and what has been pushed so far."""

    def __init__(self, lib, tmp_path, rng):
        self.lib = lib
        self.tmp = tmp_path
        self.flash = str(tmp_path / "flash.img")
        self.rng = rng
        self.sim = self.emu = self.link = None
        self.pushed = {}  # model id -> set of sha256 hex of every version ever sent
        self.installed = {}  # model id -> sha256 hex the pedal confirmed last
        self.outcomes = {}

    def start(self):
        self.sim = SimulatedPedal(NO_API, self.flash, lib=self.lib, env=pedal_env(TONEBRIDGE_LINK="uart"))
        self.sim.start()
        self.emu = LinkEmulator(self.sim.serial_path, baud=None, rx_buffer=260, rx_pending=self.sim.rx_pending,
                                seed=self.rng.randrange(1 << 30)).start()
        self.connect()

    def connect(self):
        port = serial.Serial(self.emu.host_path, 115200, exclusive=True)
        self.link = PedalLink(port, rto_s=0.5, retries=4)
        self.link.hello()

    def stop(self, power_cut=False):
        if self.link is not None:
            try:
                self.link.close(bye=not power_cut)
            except (OSError, LinkError):
                pass
            self.link = None
        self.emu.close()
        if power_cut:
            self.sim.kill()
        else:
            self.sim.stop()

    def count(self, what):
        self.outcomes[what] = self.outcomes.get(what, 0) + 1

    def check_list(self):
        """Every model the pedal lists is a version we pushed, complete."""
        models, _ = self.link.models()
        for model in models:
            assert model.sha256 in self.pushed.get(model.id, ()), "model %d: unknown content" % model.id
        for model_id, digest in self.installed.items():
            listed = [m for m in models if m.id == model_id]
            assert listed and listed[0].sha256 in self.pushed[model_id]

    def check_image(self):
        manifest, files = check_library(self.flash)  # raises on a torn or missing file
        names = {e["file"] for e in manifest["models"]}
        for entry in manifest["models"]:
            assert entry["sha256"] in self.pushed[entry["id"]]
        strays = [n for n in files if n not in names and not n.endswith(".part") and not n.endswith(".part.json")]
        assert not strays, strays  # (leftovers are removed at the next boot; none expected here)
        return manifest


def model_file(bench, index, compressible=True):
    rng = bench.rng
    size = rng.randrange(3_000, 60_000)
    if compressible and rng.random() < 0.5:
        data, ext = nam_bytes(size, index % 251), ".nam"
    else:
        data, ext = wav_bytes(size, index % 251), ".wav"
    return write(bench.tmp / ("m%d%s" % (index, ext)), data), data


def push(bench, path, model_id):
    result = bench.link.push(path, model_id, platform="nam" if path.endswith(".nam") else "ir")
    bench.installed[model_id] = result.sha256
    return result


def host_killed(bench, path, model_id, size):
    """`tonebridge pedal push` in its own process, SIGKILLed mid-transfer."""
    bench.link.close()
    bench.link = None
    proc = subprocess.Popen([sys.executable, "-m", "tonebridge", "pedal", "push", path, "--id", str(model_id),
                             "--port", bench.emu.host_path, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(bench.rng.uniform(0.3, 1.2))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    time.sleep(0.05)
    bench.connect()


@pytest.mark.slow
def test_two_hundred_pushes_with_random_faults_never_corrupt_the_library(lib, tmp_path):
    rng = random.Random(4242)
    bench = Bench(lib, tmp_path, rng)
    bench.start()
    resumed = 0
    images_checked = 0
    try:
        for index in range(PUSHES):
            fault = rng.choices(FAULTS, WEIGHTS)[0]
            model_id = rng.choice(IDS)
            # a cut is armed in line bytes: an incompressible file surely reaches it
            path, data = model_file(bench, index, compressible=fault not in ("unplug", "power_cut"))
            digest = sha(data)
            bench.pushed.setdefault(model_id, set()).add(digest)
            emu = bench.emu
            emu.drop_rate = 1e-3 if fault == "drops" else 0.0
            emu.ber = 1e-4 if fault == "flips" else 0.0
            try:
                if fault == "unplug":
                    emu.disconnect_after(rng.randrange(100, len(data)))
                elif fault == "host_killed":
                    host_killed(bench, path, model_id, len(data))
                    bench.count("host_killed")
                elif fault == "power_cut":
                    emu.disconnect_after(rng.randrange(100, len(data)))  # the cut comes mid-push
                result = push(bench, path, model_id)
                assert result.sha256 == digest
                bench.count(fault + ":installed")
            except LinkError as error:  # a clean failure: say so, then push again (resume)
                assert "Traceback" not in str(error)
                bench.count(fault + ":failed")
                if fault == "power_cut":
                    bench.stop(power_cut=True)
                    bench.check_image()
                    images_checked += 1
                    bench.start()
                else:
                    try:
                        bench.link.port.close()
                    except OSError:
                        pass
                    bench.emu.reconnect()  # a fresh cable, whether or not this one was pulled
                    bench.connect()
                bench.emu.drop_rate = bench.emu.ber = 0.0
                result = push(bench, path, model_id)
                assert result.sha256 == digest
                resumed += result.resumed_from > 0
            if index % 3:
                bench.emu.drop_rate = bench.emu.ber = 0.0  # (else: the list is read through the faults)
            bench.check_list()
        bench.stop(power_cut=True)
        manifest = bench.check_image()
        images_checked += 1
    finally:
        if bench.sim is not None and bench.sim.returncode is None:
            bench.stop(power_cut=True)
    installed = sum(v for k, v in bench.outcomes.items() if k.endswith(":installed"))
    failed = sum(v for k, v in bench.outcomes.items() if k.endswith(":failed"))
    print("outcomes:", bench.outcomes, "resumed:", resumed, "images checked:", images_checked)
    assert installed + failed >= PUSHES
    assert failed >= 20 and resumed >= 10  # the faults did bite, and pushes resumed
    assert {e["id"]: e["sha256"] for e in manifest["models"]} == bench.installed
