"""The CLI's start-up (part of `make bench`; alone: `python -m tests.bench.startup`).

Every command pays it.  Timed as a user runs them, each a whole process started from its
console script in the venv, output to /dev/null:

* `tonebridge --help`
* `tonebridge whoami`: a saved session with the account saved at sign-in, so whoami
  reads the session file and goes nowhere (an API on a closed port, to be sure);
* `mpremote --help`, the yardstick;
* `python -c pass`, the floor (the interpreter and `site` alone).

The four are run in turn (A B C D A B C D …) so that a machine's drift hits them alike,
after WARMUP rounds; reported are each one's median and best in ms, and the ratios of
the tonebridge medians to mpremote's.  Goal: both ratios <= 1.0 ("no slower than
`mpremote --help`").
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tonebridge.api.token_store import TokenStore
from tonecore.session import Tokens

RUNS = 21
WARMUP = 2
GOAL_RATIO = 1.0
BIN = os.path.dirname(sys.executable)
NOWHERE = "http://127.0.0.1:1/api/v1"
USER = {"id": "bench", "username": "bench_player", "url": None, "avatar_url": None, "bio": None, "links": [],
        "created_at": None, "updated_at": None}


def note(text):
    print("bench: " + text, file=sys.stderr, flush=True)


def _script(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        raise SystemExit("bench: %s is not installed in this venv (run `make install`)" % name)
    return path


def _save_session(home):
    now_ms = int(time.monotonic() * 1000)
    store = TokenStore(home)
    store.user = USER
    store.save(NOWHERE, Tokens("A", "R", 3600, now_ms + 3600000), now_ms, time.time())


def _seconds(argv, env):
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit("bench: `%s` failed (exit %d): %s"
                         % (" ".join(os.path.basename(a) for a in argv), done.returncode, done.stderr.decode().strip()))
    return elapsed


def measure_startup(work=None):
    """{name_ms_median, name_ms_best, …, ratios, goal} for the four commands."""
    home = tempfile.mkdtemp(prefix="home-", dir=work)
    try:
        _save_session(home)
        env = dict(os.environ, TONEBRIDGE_HOME=home, TONEBRIDGE_API=NOWHERE)
        commands = {
            "tonebridge_help": [_script("tonebridge"), "--help"],
            "tonebridge_whoami": [_script("tonebridge"), "whoami"],
            "mpremote_help": [_script("mpremote"), "--help"],
            "python_pass": [sys.executable, "-c", "pass"],
        }
        times = {name: [] for name in commands}
        for round_number in range(WARMUP + RUNS):
            for name, argv in commands.items():
                seconds = _seconds(argv, env)
                if round_number >= WARMUP:
                    times[name].append(seconds)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {"runs": RUNS}
    for name, values in times.items():
        result[name + "_ms_median"] = round(statistics.median(values) * 1000, 1)
        result[name + "_ms_best"] = round(min(values) * 1000, 1)
    yardstick = statistics.median(times["mpremote_help"])
    for name in ("tonebridge_help", "tonebridge_whoami"):
        result["ratio_%s_vs_mpremote_help" % name] = round(statistics.median(times[name]) / yardstick, 3)
    result["goal"] = "tonebridge --help and whoami <= %.1f x mpremote --help (medians)" % GOAL_RATIO
    result["goal_met"] = all(result["ratio_%s_vs_mpremote_help" % name] <= GOAL_RATIO
                             for name in ("tonebridge_help", "tonebridge_whoami"))
    note("start-up medians: --help %.1f ms, whoami %.1f ms, mpremote --help %.1f ms, python -c pass %.1f ms"
         % tuple(result[name + "_ms_median"] for name in commands))
    return result


if __name__ == "__main__":
    print(json.dumps(measure_startup(), indent=2))
