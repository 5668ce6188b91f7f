"""`make bench`: the host's download numbers, as one JSON document on stdout.

* host_download: a ~20 MB model from the local emulator, fetched alternately by
  `curl -o` and by tonebridge (same emulator, same run, rate limit off):
  - transfer: in-process `downloads.download()`, the function `tonebridge download`
    runs (Range/resume logic, SHA-256, format check, .part, fsync, rename) - the
    like-for-like comparison with curl's wall time;
  - cli: the whole `tonebridge download` command, Python start-up included.
  Ratios are tonebridge MB/s / curl MB/s (goal for transfer: >= 0.9), and also
  against curl followed by an fsync of its file: tonebridge fsyncs every download
  before renaming it into place, curl never does.
* host_peak_rss: peak RSS of the `tonebridge download` process for a ~2 MB and a
  ~20 MB file (goal: no growth with the file's size).

Progress goes to stderr; the JSON also lands in bench-results.json.  The access token
reaches curl through a config on stdin (`-K -`), never argv or output.
"""

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tonebridge import demo
from tonebridge.downloads import download, file_sha256, find_model
from tonebridge.store import TokenStore
from tonebridge.transport import Connection

BENCH_TONE = 90
SMALL_MODEL, BIG_MODEL = 1084, 1085  # ~2 MB and ~20 MB IRs (`tonebridge emulator --bench-files`)
RUNS = 9
RSS_RUNS = 3
RATIO_GOAL = 0.9
RSS_GROWTH_LIMIT_KIB = 2048
CURL = shutil.which("curl") or "/usr/bin/curl"


def note(text):
    print("bench: " + text, file=sys.stderr, flush=True)


def fsync_file(path):
    """Seconds to fsync `path` (what tonebridge does before renaming a download into place)."""
    started = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - started


def curl_download(url, token, target):
    """Seconds `curl -o` takes (the token on stdin), raising on failure."""
    config = 'header = "Authorization: Bearer %s"\n' % token
    started = time.perf_counter()
    done = subprocess.run([CURL, "-sS", "--fail", "-K", "-", "-o", target, url], input=config.encode(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit("bench: curl failed (exit %d): %s" % (done.returncode, done.stderr.decode().strip()))
    return elapsed


def transfer_download(conn, ref, target):
    """Seconds the in-process tonebridge download takes (fresh: no .part, no file)."""
    started = time.perf_counter()
    download(conn, ref, target, force=True)
    return time.perf_counter() - started


def cli_download(env, model_id, out_dir):
    """(seconds, peak RSS KiB) of a `tonebridge download` subprocess."""
    cmd = [sys.executable, "-m", "tonebridge", "download", str(model_id), "--tone", str(BENCH_TONE),
           "-o", out_dir + os.sep, "--force"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode().strip()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit("bench: `tonebridge download %d` failed (exit %d): %s" % (model_id, proc.returncode, err))
    return elapsed, usage.ru_maxrss  # KiB on Linux


def mbps(size, seconds):
    return size / seconds / 1e6


def summary(size, seconds):
    return {"median_mbps": round(mbps(size, statistics.median(seconds)), 1),
            "best_mbps": round(mbps(size, min(seconds)), 1),
            "seconds": [round(s, 4) for s in seconds]}


def check(path, expected, who):
    actual = file_sha256(path)
    if actual != expected:
        raise SystemExit("bench: %s wrote a file with SHA-256 %s, expected %s" % (who, actual, expected))


def measure_throughput(emulator, conn, env, work):
    """curl vs tonebridge (in-process and CLI) on the big file, alternating."""
    info = emulator.file_info(BIG_MODEL)
    ref = find_model(conn, BIG_MODEL, tone_id=BENCH_TONE)
    token = conn.session.tokens.access_token
    curl_s, curl_sync_s, transfer_s, cli_s = [], [], [], []
    curl_file = os.path.join(work, "curl.wav")
    for run in range(RUNS):
        for path in (curl_file, os.path.join(work, "transfer", ref.filename)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        curl_s.append(curl_download(ref.url, token, curl_file))
        curl_sync_s.append(curl_s[-1] + fsync_file(curl_file))
        check(curl_file, info["sha256"], "curl")
        target = os.path.join(work, "transfer", ref.filename)
        transfer_s.append(transfer_download(conn, ref, target))
        check(target, info["sha256"], "tonebridge (in-process)")
        seconds, _ = cli_download(env, BIG_MODEL, os.path.join(work, "cli"))
        cli_s.append(seconds)
        check(os.path.join(work, "cli", ref.filename), info["sha256"], "tonebridge download")
        note("run %d/%d: curl %.3f s (+fsync %.3f s), transfer %.3f s, cli %.3f s"
             % (run + 1, RUNS, curl_s[-1], curl_sync_s[-1], transfer_s[-1], cli_s[-1]))
    size = info["size"]
    curl, transfer, cli = summary(size, curl_s), summary(size, transfer_s), summary(size, cli_s)
    curl_sync = summary(size, curl_sync_s)
    ratio = round(transfer["median_mbps"] / curl["median_mbps"], 3)
    return {
        "model_id": BIG_MODEL,
        "file_bytes": size,
        "runs": RUNS,
        "curl": curl,
        "transfer": transfer,
        "cli": cli,
        "ratio_transfer_vs_curl": ratio,
        "ratio_cli_vs_curl": round(cli["median_mbps"] / curl["median_mbps"], 3),
        # tonebridge fsyncs before the rename (a crash never leaves a torn model);
        # curl does not: the same durability costs curl this much.
        "curl_then_fsync": curl_sync,
        "ratio_transfer_vs_curl_then_fsync": round(transfer["median_mbps"] / curl_sync["median_mbps"], 3),
        "goal": "transfer >= %.1f x curl" % RATIO_GOAL,
        "goal_met": ratio >= RATIO_GOAL,
    }


def measure_rss(emulator, env, work):
    """Peak RSS of `tonebridge download` for the small and the big file."""
    peaks = {}
    for model_id in (SMALL_MODEL, BIG_MODEL):
        size = emulator.file_info(model_id)["size"]
        rss = [cli_download(env, model_id, os.path.join(work, "rss"))[1] for _ in range(RSS_RUNS)]
        peaks[model_id] = (size, max(rss))
        note("model %d (%d bytes): peak RSS %d KiB" % (model_id, size, max(rss)))
    (small_size, small_rss), (big_size, big_rss) = peaks[SMALL_MODEL], peaks[BIG_MODEL]
    return {
        "small_file_bytes": small_size,
        "small_peak_rss_kib": small_rss,
        "big_file_bytes": big_size,
        "big_peak_rss_kib": big_rss,
        "growth_kib": big_rss - small_rss,
        "runs": RSS_RUNS,
        "goal": "no growth with file size (within %d KiB)" % RSS_GROWTH_LIMIT_KIB,
        "goal_met": big_rss - small_rss <= RSS_GROWTH_LIMIT_KIB,
    }


def main():
    work = tempfile.mkdtemp(prefix="tonebridge-bench-")
    note("starting the emulator (rate limit off, bench files on)")
    emulator = demo.Emulator("--rate-limit", "0", "--bench-files")
    try:
        home = os.path.join(work, "home")
        env = dict(os.environ, TONEBRIDGE_HOME=home, TONEBRIDGE_API=emulator.base_url)
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON only
            demo.login(env, emulator, type_code=False)
        store = TokenStore(home)
        with Connection(store.stored_api(), store) as conn:
            results = {"host_download": measure_throughput(emulator, conn, env, work)}
        results["host_peak_rss"] = measure_rss(emulator, env, work)
        results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "platform": platform.platform(), "curl": CURL}
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    with open("bench-results.json", "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
