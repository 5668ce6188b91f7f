"""Downloads through the CLI against the real emulator's faults: cuts, no Range, a
storage redirect to another origin, and Ctrl-C with a later resume."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import tracemalloc

import pytest
from click.testing import CliRunner
from signin_helpers import configure, model_info, request_log, sign_in_home, wait_until

from tonebridge.api import downloads
from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_INTERRUPTED, EXIT_LOCAL

server_module = pytest.importorskip("tonebridge.dev.emulator.server")


@pytest.fixture
def emulator():
    with server_module.EmulatorServer() as server:
        yield server


@pytest.fixture
def setup(emulator, tmp_path):
    """(run, model, info): signed in, a downloadable model picked (the largest of a tone)."""
    home = tmp_path / "home"
    sign_in_home(emulator.base_url, home)
    env = {"TONEBRIDGE_HOME": str(home), "TONEBRIDGE_API": emulator.base_url}

    def run(*args):
        result = CliRunner().invoke(cli, list(args), env=env)
        assert "Traceback" not in result.output
        return result

    tones = json.loads(run("tones", "--json").stdout)
    tone = next(t for t in tones if t["models_count"])
    models = json.loads(run("models", str(tone["id"]), "--json").stdout)
    infos = {m["id"]: model_info(emulator.base_url, m["id"]) for m in models}
    model = max(models, key=lambda m: infos[m["id"]]["size"])
    return run, model, infos[model["id"]]


def download_requests(base_url, model, since=0):
    return [e for e in request_log(base_url)[since:] if model["filename"] in e.get("path", "")]


def test_resume_after_cuts_at_random_offsets(emulator, setup, tmp_path):
    run, model, info = setup
    rng = random.Random(1234)
    cuts = sorted(rng.sample(range(1, info["size"]), 4))
    # each cut is an offset into that response's body
    queue = [cuts[0]] + [b - a for a, b in zip(cuts, cuts[1:])]
    configure(emulator.base_url, cut_queue=queue)
    before = len(request_log(emulator.base_url))
    result = run("download", str(model["id"]), "--json", "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["sha256"] == info["sha256"] and record["size"] == info["size"]
    assert record["retries"] == 4
    sent = download_requests(emulator.base_url, model, before)
    ranges = [e.get("range") or (e.get("headers") or {}).get("range") for e in sent]
    assert ranges == [None] + ["bytes=%d-" % c for c in cuts]


def test_a_server_without_range_support_restarts_and_still_verifies(emulator, setup, tmp_path):
    run, model, info = setup
    half = info["size"] // 2
    configure(emulator.base_url, range_support=False, cut_queue=[half])
    before = len(request_log(emulator.base_url))
    result = run("download", str(model["id"]), "--json", "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["sha256"] == info["sha256"] and record["size"] == info["size"]
    sent = download_requests(emulator.base_url, model, before)
    # asked to resume, got the whole file again (200): the .part was truncated, not appended to
    assert [(e["status"], e["range"], e.get("cut", False)) for e in sent] == [
        (200, None, True), (200, "bytes=%d-" % half, False)]
    assert (tmp_path / "out" / model["filename"]).stat().st_size == info["size"]


def test_no_authorization_is_sent_to_the_storage_origin(emulator, setup, tmp_path):
    run, model, info = setup
    configure(emulator.base_url, storage_redirect=True, cut_queue=[info["size"] // 3])
    before = len(request_log(emulator.base_url))
    result = run("download", str(model["id"]), "--json", "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sha256"] == info["sha256"]
    sent = download_requests(emulator.base_url, model, before)
    # each attempt: the API (with the token) redirects to storage (without it); the second resumes
    assert [(e["origin"], e["status"], e["has_authorization"]) for e in sent] == [
        ("api", 302, True), ("storage", 200, False), ("api", 302, True), ("storage", 206, False)]
    assert sent[3]["range"] == "bytes=%d-" % (info["size"] // 3)


def test_chunked_bodies_cut_mid_chunk_resume_and_verify(emulator, setup, tmp_path):
    # No Content-Length: only the chunked framing tells a cut from the end of the file.
    run, model, info = setup
    third = info["size"] // 3
    configure(emulator.base_url, chunked=True, cut_queue=[third, third])
    before = len(request_log(emulator.base_url))
    result = run("download", str(model["id"]), "--json", "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["sha256"] == info["sha256"] and record["retries"] == 2
    sent = download_requests(emulator.base_url, model, before)
    assert [e.get("range") for e in sent] == [None, "bytes=%d-" % third, "bytes=%d-" % (2 * third)]


def test_a_503_on_the_file_is_retried(emulator, setup, tmp_path):
    run, model, info = setup
    configure(emulator.base_url, fail_5xx=1)  # the first request after this: the download
    result = run("download", str(model["id"]), "--tone", str(model["tone_id"]), "--json",
                 "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sha256"] == info["sha256"]


def test_ctrl_c_keeps_the_part_and_the_next_run_resumes(emulator, setup, tmp_path, monkeypatch):
    run, model, info = setup
    out = tmp_path / "out"
    real_write = downloads.PartSink.write

    def write_then_interrupt(self, chunk):  # after the first piece (at most 256 KiB of this ~300 KB file)
        real_write(self, chunk)
        raise KeyboardInterrupt

    monkeypatch.setattr(downloads.PartSink, "write", write_then_interrupt)
    interrupted = run("download", str(model["id"]), "-o", str(out) + "/")
    assert interrupted.exit_code == EXIT_INTERRUPTED
    part = out / (model["filename"] + ".part")
    assert "run the same command again to resume" in interrupted.stderr and str(part) in interrupted.stderr
    kept = part.stat().st_size
    assert 0 < kept < info["size"]
    sidecar = json.loads((out / (model["filename"] + ".part.json")).read_text())
    assert sidecar["model_id"] == model["id"]

    monkeypatch.setattr(downloads.PartSink, "write", real_write)
    before = len(request_log(emulator.base_url))
    resumed = run("download", str(model["id"]), "--json", "-o", str(out) + "/")
    assert resumed.exit_code == 0, resumed.output
    record = json.loads(resumed.stdout)
    assert record["resumed_from"] == kept and record["sha256"] == info["sha256"]
    sent = download_requests(emulator.base_url, model, before)
    assert [e.get("range") or (e.get("headers") or {}).get("range") for e in sent] == ["bytes=%d-" % kept]
    assert sorted(os.listdir(out)) == [model["filename"]]


def test_memory_does_not_grow_with_file_size(emulator, setup, tmp_path):
    run = setup[0]
    hall_ir = max((m for m in json.loads(run("models", "12", "--json").stdout)),
                  key=lambda m: model_info(emulator.base_url, m["id"])["size"])  # the 3 MB hall IR
    info = model_info(emulator.base_url, hall_ir["id"])  # built (and cached) by the emulator now
    assert info["size"] > 3_000_000
    tracemalloc.start()
    try:
        result = run("download", str(hall_ir["id"]), "--json", "-o", str(tmp_path / "out") + "/")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sha256"] == info["sha256"]
    assert peak < info["size"] // 3  # this process (CLI and emulator threads) never held the file


def test_large_downloads_are_synced_in_the_background(emulator, setup, tmp_path, monkeypatch):
    run, model, info = setup
    synced = []
    monkeypatch.setattr(downloads, "SYNC_EVERY", info["size"] // 4)
    monkeypatch.setattr(downloads, "_datasync", lambda fd: synced.append(threading.current_thread().name))
    result = run("download", str(model["id"]), "--json", "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sha256"] == info["sha256"]
    assert synced and set(synced) == {"tonebridge-sync"}  # never the downloading thread
    assert "tonebridge-sync" not in [t.name for t in threading.enumerate()]  # joined before returning


def test_a_background_sync_error_fails_the_download(emulator, setup, tmp_path, monkeypatch):
    # Linux reports a write-back error to one fsync only: the helper's, so it is passed on.
    run, model, info = setup

    def broken_disk(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(downloads, "SYNC_EVERY", info["size"] // 4)
    monkeypatch.setattr(downloads, "_datasync", broken_disk)
    out = tmp_path / "out"
    result = run("download", str(model["id"]), "-o", str(out) + "/")
    assert result.exit_code == EXIT_LOCAL and "input/output error" in result.stderr.lower()
    assert model["filename"] not in os.listdir(out)  # never installed


def test_a_real_sigint_mid_download_exits_130_and_keeps_the_part(emulator, setup, tmp_path):
    run, model, info = setup
    configure(emulator.base_url, cut_after=2000)  # every response cut: the download crawls
    out = tmp_path / "out"
    env = dict(os.environ, TONEBRIDGE_HOME=str(tmp_path / "home"), TONEBRIDGE_API=emulator.base_url)
    proc = subprocess.Popen([sys.executable, "-m", "tonebridge", "download", str(model["id"]), "-o", str(out) + "/"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = out / (model["filename"] + ".part")
    wait_until(lambda: part.exists() and part.stat().st_size >= 4000, what="a few cut attempts")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == EXIT_INTERRUPTED
    kept = part.stat().st_size
    assert stderr == ("tonebridge: error: interrupted; %d bytes are kept in %s: "
                      "run the same command again to resume\n" % (kept, part))
    assert stdout == ""

    configure(emulator.base_url, cut_after=None)
    resumed = run("download", str(model["id"]), "--json", "-o", str(out) + "/")
    record = json.loads(resumed.stdout)
    assert record["resumed_from"] == kept and record["sha256"] == info["sha256"]
