"""`make bench`: the host's download numbers, as one JSON document on stdout.

* host_download: a ~20 MB model from the local emulator, fetched alternately by
  `curl -o` and by tonebridge (same emulator, same run, rate limit off):
  - transfer: in-process `downloads.download()`, the function `tonebridge download`
    runs (Range/resume logic, SHA-256, format check, .part, fsync, rename) - the
    like-for-like comparison with curl's wall time;
  - cli: the whole `tonebridge download` command, Python start-up included.
  Ratios are tonebridge MB/s / curl MB/s (goal for transfer: >= 0.9).  curl's file is
  fsynced after each run, outside its timing: tonebridge fsyncs every download before
  renaming it into place and curl never does, so the next run must not inherit curl's
  unwritten pages.  That fsync is reported too (curl_fsync_*).
* host_peak_rss: peak RSS of the `tonebridge download` process for a ~2 MB and a
  ~20 MB file (goal: no growth with the file's size).

Progress goes to stderr; the JSON also lands in bench-results.json at the repo root.
The access token reaches curl through a config on stdin (`-K -`), never argv or output.
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_FILE = os.path.join(ROOT, "bench-results.json")
BENCH_TONE = 90
SMALL_MODEL, BIG_MODEL = 1084, 1085  # ~2 MB and ~20 MB IRs (`tonebridge emulator --bench-files`)
RUNS = 5
RSS_RUNS = 3
RATIO_GOAL = 0.9
RSS_GROWTH_LIMIT_KIB = 2048
CURL = shutil.which("curl") or "/usr/bin/curl"


def note(text):
    """A progress line on stderr (stdout is for the JSON only)."""
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
    """Seconds `curl -o` takes, raising on failure.

    The token goes in a config on stdin; `-L` follows redirects, and curl (like
    tonebridge) sends no Authorization header to another host.
    """
    config = 'header = "Authorization: Bearer %s"\n' % token
    started = time.perf_counter()
    done = subprocess.run([CURL, "-sS", "--fail", "-L", "-K", "-", "-o", target, url], input=config.encode(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit("bench: curl failed (exit %d): %s" % (done.returncode, done.stderr.decode().strip()))
    return elapsed


def transfer_download(conn, ref, target):
    """Seconds the in-process tonebridge download takes (`target` must not exist yet)."""
    started = time.perf_counter()
    download(conn, ref, target, force=True)
    return time.perf_counter() - started


def cli_download(env, model_id, out_dir):
    """(seconds, peak RSS KiB) of a `tonebridge download` subprocess."""
    cmd = [sys.executable, "-m", "tonebridge", "download", str(model_id), "--tone", str(BENCH_TONE),
           "-o", out_dir + os.sep, "--force"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode().strip()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit("bench: `tonebridge download %d` failed (exit %d): %s" % (model_id, proc.returncode, err))
    return elapsed, usage.ru_maxrss  # KiB on Linux


def remove(*paths):
    """Delete files left by an earlier run, so every download starts fresh."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def check(path, expected, who):
    """Fail unless the file at `path` has SHA-256 `expected`."""
    actual = file_sha256(path)
    if actual != expected:
        raise SystemExit("bench: %s wrote a file with SHA-256 %s, expected %s" % (who, actual, expected))


def mbps(size, seconds):
    return round(size / seconds / 1e6, 1)


def speeds(name, size, seconds):
    """{name_mbps_median, name_mbps_best} for a list of run times."""
    return {name + "_mbps_median": mbps(size, statistics.median(seconds)),
            name + "_mbps_best": mbps(size, min(seconds))}


def measure_throughput(emulator, conn, env, work):
    """curl vs tonebridge (in-process and CLI) on the big file, alternating."""
    info = emulator.file_info(BIG_MODEL)  # also makes the emulator build the file before any timing
    ref = find_model(conn, BIG_MODEL, tone_id=BENCH_TONE)
    token = conn.session.tokens.access_token
    curl_file = os.path.join(work, "curl", ref.filename)
    transfer_file = os.path.join(work, "transfer", ref.filename)
    cli_file = os.path.join(work, "cli", ref.filename)
    os.makedirs(os.path.dirname(curl_file))
    times = {"curl": [], "curl_fsync": [], "transfer": [], "cli": []}
    for run in range(RUNS):
        remove(curl_file, transfer_file, cli_file)
        times["curl"].append(curl_download(ref.url, token, curl_file))
        times["curl_fsync"].append(fsync_file(curl_file))
        check(curl_file, info["sha256"], "curl")
        times["transfer"].append(transfer_download(conn, ref, transfer_file))
        check(transfer_file, info["sha256"], "tonebridge (in-process)")
        times["cli"].append(cli_download(env, BIG_MODEL, os.path.dirname(cli_file))[0])
        check(cli_file, info["sha256"], "tonebridge download")
        note("run %d/%d: curl %.3f s (then fsync %.3f s), transfer %.3f s, cli %.3f s"
             % (run + 1, RUNS, *(times[k][-1] for k in ("curl", "curl_fsync", "transfer", "cli"))))
    size = info["size"]
    curl_median = statistics.median(times["curl"])
    ratio = round(curl_median / statistics.median(times["transfer"]), 3)  # = MB/s ratio
    result = {"model_id": BIG_MODEL, "file_bytes": size, "runs": RUNS}
    for name in ("curl", "transfer", "cli"):
        result.update(speeds(name, size, times[name]))
    result.update({
        "ratio_transfer_vs_curl": ratio,
        "ratio_cli_vs_curl": round(curl_median / statistics.median(times["cli"]), 3),
        "curl_fsync_ms_median": round(statistics.median(times["curl_fsync"]) * 1000, 1),
        "ratio_transfer_vs_curl_plus_fsync": round(
            statistics.median([c + f for c, f in zip(times["curl"], times["curl_fsync"])])
            / statistics.median(times["transfer"]), 3),
        "seconds": {name: [round(s, 4) for s in times[name]] for name in times},
        "goal": "transfer >= %.1f x curl" % RATIO_GOAL,
        "goal_met": ratio >= RATIO_GOAL,
    })
    return result


def measure_rss(emulator, env, work):
    """Peak RSS of `tonebridge download` for the small and the big file."""
    result = {}
    for label, model_id in (("2mb", SMALL_MODEL), ("20mb", BIG_MODEL)):
        size = emulator.file_info(model_id)["size"]
        peak = max(cli_download(env, model_id, os.path.join(work, "rss"))[1] for _ in range(RSS_RUNS))
        note("model %d (%d bytes): peak RSS %d KiB" % (model_id, size, peak))
        result.update({label + "_file_bytes": size, label + "_kib": peak})
    growth = result["20mb_kib"] - result["2mb_kib"]
    result.update({
        "growth_kib": growth,
        "runs": RSS_RUNS,
        "goal": "no growth with file size (within %d KiB)" % RSS_GROWTH_LIMIT_KIB,
        "goal_met": growth <= RSS_GROWTH_LIMIT_KIB,
    })
    return result


def machine():
    """What the numbers were measured on."""
    curl_version = subprocess.run([CURL, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "curl": " ".join(curl_version.split()[:2])}


def run_all(work):
    """Start the emulator, sign in, measure; the emulator is stopped whatever happens."""
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
    finally:
        emulator.stop()
    results["machine"] = machine()
    return results


def main():
    work = tempfile.mkdtemp(prefix="tonebridge-bench-")
    try:
        results = run_all(work)
    except KeyboardInterrupt:
        note("interrupted")
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    with open(RESULTS_FILE, "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
