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
* pedal: the simulated pedal (the real firmware, MicroPython unix port, littlefs image)
  signs in through its portal and syncs demo's favorited and created tones - every
  model the unix_sim board can run, ~40 MB with the bench files - with 128 KB of heap
  for data (the unix port adds the firmware's bytecode, which a board keeps frozen in
  flash; reported as code_bytes).  gc.threshold(2 KB) keeps mem_alloc() within ~2 KB
  of the live data; nobody loads the portal during the sync.  Reported: peak mem_alloc() during the sync (goal: data <= 64 KB),
  the peak while downloading the ~4 MB and the ~40 KB file (goal: within 4 KB), and
  the pedal's download speed for the ~4 MB and ~20 MB files as a ratio to `curl -o`
  of the same file from the same emulator in the same run.
  The USB link service runs too, with an ESP32 UART board's buffers (~1.3 KB).
  With TONEBRIDGE_MICROPYTHON set to a unix port that has the firmware frozen in
  (tools/frozen-unix-port.sh), the pedal runs with exactly 128 KB of heap, as a board.

* usb_link: pushes of a 1 MiB incompressible model over the USB serial link
  (tests/bench/link.py has the details): goodput on an emulated UART at 115200 and
  921600 baud with the 260-byte receive ring modelled (goals >= 0.95, >= 0.90); on the
  raw pty against a raw byte copy (goal >= 0.5) and `mpremote cp` (goal >= 10x); bytes
  sent again after a pulled cable (goal <= one window).

* cli_startup: `tonebridge --help` and `tonebridge whoami` (a saved session, no network)
  against `mpremote --help`, medians of 21 runs (tests/bench/startup.py has the details;
  goal: both <= 1.0x).  Measured first, while the machine is quiet.

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

from tests.bench.link import measure_link
from tests.bench.startup import measure_startup
from tonebridge.dev import EMULATOR_CLIENT_ID, demo
from tonebridge.api.downloads import download, file_sha256, find_model
from tonebridge.api.token_store import TokenStore
from tonebridge.api.transport import Connection

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


PEDAL_FLASH_BYTES = 64 * 1024 * 1024
PEDAL_BIG, PEDAL_SMALL = 1086, 1087  # ~4 MB and ~40 KB IRs of the bench tone
PEDAL_DATA_GOAL = 64 * 1024
PEDAL_GC_THRESHOLD = 2048  # mem_alloc() is then at most ~2 KB above the live data
PEDAL_GROWTH_GOAL = 4 * 1024


def measure_pedal(emulator, token, work):
    """The simulated pedal: sign in through its portal, sync, report heap and speed."""
    import httpx

    from tests.helpers.pedal_helpers import owner_cookies, portal
    from tonebridge.dev import phone
    from tonebridge.dev.simulator import SimulatedPedal

    flash = os.path.join(work, "pedal.img")
    with open(flash, "wb") as f:
        f.truncate(PEDAL_FLASH_BYTES)
    # the serial link's buffers as on an ESP32 UART board (the simulator's own "pty"
    # profile takes 32 KB for speed on loopback)
    env = {"TONEBRIDGE_STATS": "1", "TONEBRIDGE_GC_THRESHOLD": str(PEDAL_GC_THRESHOLD), "TONEBRIDGE_LINK": "uart"}
    with SimulatedPedal(emulator.base_url + "/api/v1", flash, env=env) as pedal:
        pedal.start()
        frozen = pedal.frozen
        note("pedal: heap %d bytes (-X heapsize)%s; signing in through %s"
             % (pedal.heap, ", firmware frozen in" if frozen else " = %d for data + %d of bytecode"
                % (pedal.data_heap, pedal.code_bytes), pedal.portal_url))
        started = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):
            phone.sign_in(pedal.portal_url + "signin", demo.EMAIL, phone.outbox_code(emulator.base_url, demo.EMAIL),
                          cookies=owner_cookies(pedal))
        # The console, not the portal, says when it is over: no page is built during the sync.
        pedal.wait_for_console(lambda line: "sync: done" in line or "sync: stopped" in line, 900)
        sync_seconds = time.monotonic() - started
        status = portal(pedal).get(pedal.portal_url + "status.json", timeout=30).json()
        sync = status["sync"]
    if sync["state"] != "done" or sync["failed"]:
        raise SystemExit("bench: the pedal's sync failed: %s" % (sync["error"] or sync))
    stats = {row[0]: {"bytes": row[1], "ms": row[2], "peak": row[3]} for row in sync["stats"]}
    code = status["heap"]["code"]
    peak = status["heap"]["sync_peak"]
    models = status["models"]
    result = {
        "micropython": "frozen firmware (%s)" % os.environ.get("TONEBRIDGE_MICROPYTHON") if frozen
        else "PyPI unix port, firmware loaded from .mpy",
        "models": len(models),
        "model_bytes": sum(m["bytes"] for m in models),
        "sync_seconds": round(sync_seconds, 1),
        "heap_total_bytes": pedal.heap,
        "heap_data_budget_bytes": pedal.data_heap,
        "code_bytes": code,
        "peak_mem_alloc": peak,
        "peak_data_bytes": peak - code,
        "resident_data_after_sync_bytes": status["heap"]["alloc"] - code,
        "gc_threshold_bytes": PEDAL_GC_THRESHOLD,
        "data_goal": "peak data <= %d KB with 128 KB of heap for data" % (PEDAL_DATA_GOAL // 1024),
        "data_goal_met": peak - code <= PEDAL_DATA_GOAL,
    }
    big, small = stats[PEDAL_BIG], stats[PEDAL_SMALL]
    growth = big["peak"] - small["peak"]
    result.update({
        "file_4mb_bytes": big["bytes"], "file_4mb_peak_mem_alloc": big["peak"],
        "file_40kb_bytes": small["bytes"], "file_40kb_peak_mem_alloc": small["peak"],
        "peak_growth_bytes": growth,
        "growth_goal": "4 MB file within %d KB of the 40 KB file" % (PEDAL_GROWTH_GOAL // 1024),
        "growth_goal_met": abs(growth) <= PEDAL_GROWTH_GOAL,
    })
    # Speed, measured without the memory probe (gc.threshold makes the GC run all the
    # time): new versions of the two files, and a restarted pedal that syncs them.
    for model_id in (PEDAL_BIG, BIG_MODEL):
        httpx.post("%s/_emulator/models/%d/update" % (emulator.base_url, model_id), timeout=30).raise_for_status()
    with SimulatedPedal(emulator.base_url + "/api/v1", flash, env={"TONEBRIDGE_STATS": "1"}) as pedal:
        pedal.start()
        pedal.wait_for_console(lambda line: "sync: done" in line or "sync: stopped" in line, 900)
        again = portal(pedal).get(pedal.portal_url + "status.json", timeout=30).json()["sync"]
    if again["state"] != "done" or again["installed"] != 2:
        raise SystemExit("bench: the pedal's second sync did not install the two new versions: %s" % again)
    stats = {row[0]: {"bytes": row[1], "ms": row[2]} for row in again["stats"]}
    for label, model_id in (("4mb", PEDAL_BIG), ("20mb", BIG_MODEL)):
        row = stats[model_id]
        pedal_mbps = row["bytes"] / (row["ms"] / 1000.0) / 1e6
        ref = find_model_ref(emulator, model_id)
        target = os.path.join(work, "pedal-curl-%d" % model_id)
        curl_times = []
        for _ in range(3):
            remove(target)
            curl_times.append(curl_download(ref, token, target))
        curl_mbps = row["bytes"] / statistics.median(curl_times) / 1e6
        note("pedal: model %d, %d bytes in %d ms: %.1f MB/s; curl %.1f MB/s"
             % (model_id, row["bytes"], row["ms"], pedal_mbps, curl_mbps))
        result.update({
            "download_%s_pedal_mbps" % label: round(pedal_mbps, 1),
            "download_%s_curl_mbps" % label: round(curl_mbps, 1),
            "download_%s_ratio_vs_curl" % label: round(pedal_mbps / curl_mbps, 3),
        })
    return result


def find_model_ref(emulator, model_id):
    """The download URL of a bench model (the emulator serves /api/v1/models/<id>/download/<name>)."""
    info = emulator.file_info(model_id)
    return "%s/api/v1/models/%d/download/%s" % (emulator.base_url, model_id, info["filename"])


def machine():
    """What the numbers were measured on."""
    curl_version = subprocess.run([CURL, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "curl": " ".join(curl_version.split()[:2])}


def _token(store):
    with Connection(store.stored_api(), store) as conn:
        return conn.session.tokens.access_token


def run_all(work):
    """Start the emulator, sign in, measure; the emulator is stopped whatever happens."""
    note("the CLI's start-up: tonebridge --help and whoami against mpremote --help")
    startup = measure_startup(work)
    note("starting the emulator (rate limit off, bench files on)")
    emulator = demo.Emulator("--rate-limit", "0", "--bench-files")
    try:
        home = os.path.join(work, "home")
        env = dict(os.environ, TONEBRIDGE_HOME=home, TONEBRIDGE_API=emulator.base_url,
                   TONEBRIDGE_CLIENT_ID=EMULATOR_CLIENT_ID)
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON only
            demo.login(env, emulator, type_code=False)
        store = TokenStore(home)
        with Connection(store.stored_api(), store) as conn:
            results = {"host_download": measure_throughput(emulator, conn, env, work)}
        results["host_peak_rss"] = measure_rss(emulator, env, work)
        note("the simulated pedal: sign-in through its portal, then a full sync")
        results["pedal"] = measure_pedal(emulator, _token(store), work)
    finally:
        emulator.stop()
    note("the USB serial link: emulated UART at 921600 and 115200 baud, raw pty, resume")
    results["usb_link"] = measure_link(work)
    note("the pedal's portal under a minute of hostile connections")
    from tests.bench.portal import measure_portal_flood

    results["portal_flood"] = measure_portal_flood(work)
    results["cli_startup"] = startup
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
