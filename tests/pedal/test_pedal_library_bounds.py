"""The library's bound and hostile flash: the simulated pedal (128 KB heap for data) with a
tone of 1,500 tiny models, a manifest far bigger than its heap, a damaged manifest, and
running out of memory while reading or tidying the flash; a power cut in each case.
Every case ends with a pedal that boots and serves its page (before: a reset loop).
"""

import json
import random
import threading
import time

import pytest
from pedal_helpers import check_library, mount, portal, read, sign_in, status, sync_finished, wait_status
from signin_helpers import configure

from tonebridge.boards.flashimage import make_image
from tonebridge.dev.emulator.catalogue import MANY_FIRST_ID
from tonebridge.dev.emulator.server import EmulatorServer
from tonebridge.dev.simulator import SimError, SimulatedPedal

MAX_MODELS = 64  # unix_sim: HEAP_BUDGET // 2048
FAST = {"TONEBRIDGE_PACE_WINDOW_MS": "1000"}  # 90 requests a second: 150 pages of models, not a pacing test


@pytest.fixture
def emulator():
    with EmulatorServer() as server:
        configure(server.base_url, rate_limit=100000)
        yield server


def pedal_for(api, flash, lib, log=None, **env):
    return SimulatedPedal(api, str(flash), lib=lib, env=env, log=log and str(log))


def serves_its_page(pedal):
    """The page and the status answer; returns the status."""
    page = portal(pedal).get("")
    assert page.status_code == 200 and "<h1>tonebridge</h1>" in page.text
    return status(pedal)


def boot_and_cut(api, flash, lib, delay_s, **env):
    """Start a pedal and cut its power `delay_s` after the process started, whether or not
    its portal is up by then (a cut during the manifest read, rewrite or tidying)."""
    pedal = pedal_for(api, flash, lib, **env)
    thread = threading.Thread(target=_start_quietly, args=(pedal,), daemon=True)
    thread.start()
    time.sleep(delay_s)
    pedal.kill()
    thread.join(30)


def _start_quietly(pedal):
    try:
        pedal.start()
    except SimError:  # killed before its portal listened
        pass


def test_a_tone_of_1500_tiny_models_fills_the_library_to_its_bound_and_the_pedal_boots_again(emulator, lib,
                                                                                            tmp_path):
    """The reported case: the sync installed 110 and ran out of memory, and the next boot
    raised MemoryError in recover() (a reset loop).  Now the sync stops adding at the
    bound and says so; the pedal keeps running and boots again on the same flash."""
    emulator.state.catalogue.add_many_models(1500)  # demo's most recent favorite
    flash = tmp_path / "flash.img"
    log = tmp_path / "console.log"  # the whole console: its ring keeps the last 200 lines
    with pedal_for(emulator.base_url + "/api/v1", flash, lib, log, **FAST) as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        done = wait_status(pedal, sync_finished, 300, "finished sync")
        sync = done["sync"]
        assert sync["state"] == "done" and sync["error"] is None and sync["failed"] == 0, sync
        assert done["max_models"] == MAX_MODELS and done["model_count"] == MAX_MODELS == sync["installed"]
        assert sync["library_full"] >= 1500 - MAX_MODELS  # and demo's other favorites
        console = log.read_text()
        assert "sync: model %d skipped: library full (64 models)" % (MANY_FIRST_ID + MAX_MODELS) in console
        assert "skipped: library full: 64 models (the most this pedal keeps); delete some on the page" in console

        # deleting one makes room for exactly one more
        first = done["models"][0]["id"]
        assert portal(pedal).post("models/%d/delete" % first, headers={"accept": "application/json"}).status_code == 200
        assert portal(pedal).post("sync").status_code == 202
        again = wait_status(pedal, sync_finished, 300, "second sync")
        assert again["sync"]["installed"] == 1 and again["model_count"] == MAX_MODELS, again["sync"]
    manifest, files = check_library(str(flash))
    assert len(manifest["models"]) == MAX_MODELS and not [n for n in files if n.endswith(".part")]

    with pedal_for(emulator.base_url + "/api/v1", flash, lib, TONEBRIDGE_SYNC_ON_BOOT="0") as pedal:
        pedal.start()
        after = serves_its_page(pedal)
        assert after["model_count"] == MAX_MODELS and after["library_note"] is None and after["safe_mode"] is None


def test_power_cuts_during_the_many_models_sync_never_leave_a_pedal_that_cannot_boot(emulator, lib, tmp_path):
    """The power-loss harness on the hostile tone: cut the power at random points while
    the sync installs tiny models (and while it lists the rest), boot again each time."""
    emulator.state.catalogue.add_many_models(1500)
    flash = tmp_path / "flash.img"
    with pedal_for(emulator.base_url + "/api/v1", flash, lib, TONEBRIDGE_SYNC_ON_SIGN_IN="0") as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
    rng = random.Random(20261212)
    cuts = 0
    while cuts < 8:
        pedal = pedal_for(emulator.base_url + "/api/v1", flash, lib, **FAST)
        pedal.start()
        try:
            pedal.wait_for_console(lambda line: "sync: model" in line or "sync: done" in line, 60)
            time.sleep(rng.uniform(0, 1.5))
        finally:
            pedal.kill()
        cuts += 1
        manifest, _ = check_library(str(flash))  # mounts; every listed model verifies
        assert len(manifest["models"]) <= MAX_MODELS
    with pedal_for(emulator.base_url + "/api/v1", flash, lib, **FAST) as pedal:
        pedal.start()
        done = wait_status(pedal, sync_finished, 300, "final sync")
        assert done["sync"]["state"] == "done" and done["model_count"] == MAX_MODELS, done["sync"]
        assert done["safe_mode"] is None  # power cuts are no crashes
        serves_its_page(pedal)
    manifest, files = check_library(str(flash))
    assert len(manifest["models"]) == MAX_MODELS and not [n for n in files if n.endswith((".part", ".tmp"))]


# -- hostile flash: made on the host -------------------------------------------------------

def entry(model_id, data=b"x" * 100):
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    return {"id": model_id, "tone_id": 5, "name": "Model %d" % model_id, "platform": "ir", "size": "standard",
            "bytes": len(data), "sha256": sha, "updated_at": "2025-11-01T10:00:00.000000+00:00",
            "file": "%d-%s.wav" % (model_id, sha[:8])}


def manifest_text(entries, active):
    """library.json as the pedal writes it: one model a line."""
    return ('{"version": 1, "active": %s, "models": [\n' % json.dumps(active)
            + ",\n".join(json.dumps(e) for e in entries) + "]}\n")


def image_with(path, text, models=(), extra=None):
    """A flash image holding `text` as library.json and the files of `models` (entries)."""
    files = {"library.json": text.encode() if isinstance(text, str) else text}
    for e in models:
        files["models/" + e["file"]] = b"x" * 100
    files.update(extra or {})
    make_image(str(path), files)


def cut_then_boot(flash, lib, rng, cuts=4, **env):
    """Power cuts at random points of the first starts on `flash`, then a start that must
    serve its page; returns its status and console.  After each cut the image mounts and
    its manifest is the one the host wrote (the pedal had not rewritten it yet) or one
    whose every model verifies."""
    original = read(mount(str(flash)), "library.json")  # mount() reads a copy
    for _ in range(cuts):
        boot_and_cut("http://127.0.0.1:9/api/v1", flash, lib, rng.uniform(0.02, 0.4), **env)
        if read(mount(str(flash)), "library.json") != original:
            check_library(str(flash))
    with pedal_for("http://127.0.0.1:9/api/v1", flash, lib, **env) as pedal:
        pedal.start()
        return serves_its_page(pedal), "\n".join(pedal.console_lines())


def test_a_manifest_far_bigger_than_the_heap_boots_with_the_models_it_can_keep(lib, tmp_path):
    """6,000 entries (1.5 MB, more than ten times the heap): read a model at a time, the
    first 64 kept, the manifest rewritten, entries without a file dropped."""
    present = [entry(1000 + n) for n in range(10)]
    entries = present + [entry(2000 + n) for n in range(5990)]
    text = manifest_text(entries, 1003)
    assert len(text) > 10 * 128 * 1024
    flash = tmp_path / "flash.img"
    image_with(flash, text, present)
    status_, console = cut_then_boot(flash, lib, random.Random(1))
    assert status_["model_count"] == 10 and status_["active"] == 1003 and status_["safe_mode"] is None
    manifest, _ = check_library(str(flash))
    assert sorted(e["id"] for e in manifest["models"]) == [e["id"] for e in present]
    # the note is said once, at the start that found it (later starts find a tidy manifest)
    assert "library:" not in console or "more models than this pedal keeps" in console


def test_a_damaged_manifest_keeps_the_models_it_can_read(lib, tmp_path):
    models = [entry(1000 + n) for n in range(6)]
    lines = manifest_text(models, 1001).split("\n")
    lines[3] = lines[3][:40] + '\x00{{"[' + lines[3][60:]  # the third model's line is garbage
    flash = tmp_path / "flash.img"
    image_with(flash, "\n".join(lines), models)
    with pedal_for("http://127.0.0.1:9/api/v1", flash, lib) as pedal:
        pedal.start()
        now = serves_its_page(pedal)
        console = "\n".join(pedal.console_lines())
    assert now["model_count"] == 5 and now["active"] == 1001
    assert "library: the model list on flash was damaged: 1 entries could not be read and were dropped" in console
    manifest, files = check_library(str(flash))
    assert 1002 not in [e["id"] for e in manifest["models"]] and models[2]["file"] not in files  # tidied

    garbage = tmp_path / "garbage.img"
    image_with(garbage, bytes(range(256)) * 64, models)  # not JSON at all
    status_, _ = cut_then_boot(garbage, lib, random.Random(2))
    assert status_["model_count"] == 0 and status_["safe_mode"] is None
    manifest, files = check_library(str(garbage))
    assert manifest["models"] == [] and files == {}


def test_out_of_memory_reading_the_manifest_leaves_the_library_read_only_and_the_pedal_serving(lib, tmp_path):
    models = [entry(1000 + n) for n in range(4)]
    flash = tmp_path / "flash.img"
    image_with(flash, manifest_text(models, 1000), models, {"models/1001-deadbeef.wav": b"left over"})
    status_, console = cut_then_boot(flash, lib, random.Random(3), cuts=2, TONEBRIDGE_CRASH="manifest")
    assert status_["model_count"] == 0 and status_["safe_mode"] is None
    assert "out of memory while reading the model list" in status_["library_note"]
    assert "library: out of memory while reading the model list" in console
    _, files = check_library(str(flash))
    assert len(files) == 5  # nothing was tidied away: the models' files are still there

    # the next start with memory to spare has them all again
    with pedal_for("http://127.0.0.1:9/api/v1", flash, lib) as pedal:
        pedal.start()
        again = serves_its_page(pedal)
    assert again["model_count"] == 4 and again["library_note"] is None
    _, files = check_library(str(flash))
    assert "1001-deadbeef.wav" not in files and len(files) == 4


def test_out_of_memory_while_tidying_the_flash_is_logged_and_the_pedal_serves(lib, tmp_path):
    """The reported MemoryError in recover(): now one console line, not a reset loop."""
    models = [entry(1000 + n) for n in range(3)]
    flash = tmp_path / "flash.img"
    image_with(flash, manifest_text(models, 1000), models)
    status_, console = cut_then_boot(flash, lib, random.Random(4), cuts=2, TONEBRIDGE_CRASH="recover")
    assert status_["model_count"] == 3 and status_["safe_mode"] is None
    assert "flash: out of memory while tidying up; leftover files stay until the next start" in console
    assert json.loads(read(mount(str(flash)), "crashes.json"))["count"] == 1  # no crash: only this start counted
