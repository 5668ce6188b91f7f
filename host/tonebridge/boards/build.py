"""The firmware build: a board's manifest compiled with mpy-cross into its flash layout.

`build(board)` reads boards/<board>/manifest.py (tonebridge.boards.manifests: the one
list of the firmware's files, the one a freeze uses too) and compiles every file it
names for the board's architecture, into the layout a stock MicroPython board runs
from its flash:

    build/<board>/main.py                 `import pedal.main; pedal.main.boot()` (not on the simulated board)
    build/<board>/lib/<target>.mpy        each file of the manifest: tonecore/, pedal/, microdot/,
                                          boardinfo (and simboard/ on unix_sim)
    build/<board>/ca/*.der                the board's CA_FILES
    build/<board>/BUILD.json              what was built (see below)
    build/<board>/stage/                  the microdot package and boardinfo.py (the board's
                                          board.py) as sources: what the manifest takes them
                                          from, and what MicroPython's make freezes

BUILD.json:

    {"board": "esp32_generic", "arch": "xtensawin" | null, "tonebridge": "0.1.0",
     "mpy_cross": "<mpy-cross --version>", "total_bytes": 312345,
     "files": {"lib/tonecore/auth.mpy": {"size": 1234, "sha256": "<hex>"}, ...},
     "sources": {"lib/tonecore/auth.mpy": "<sha256 of the source>", ...}}

A build is incremental: an output is remade only when its source's SHA-256, the
architecture or the mpy-cross version changed, or the output itself was altered.
"""

import hashlib
import importlib.util
import json
import os
import shutil

from tonebridge import __version__, paths
from tonebridge.boards import FirmwareError
from tonebridge.boards.facts import boards_dir_of, load_board
from tonebridge.boards.manifests import read_manifest
from tonebridge.boards.mpycross import BuildError, compile_file, mpy_cross_version
from tonebridge.fileio import file_sha256, write_atomic

RECORD_NAME = "BUILD.json"
STAGE = "stage"  # <out>/stage: the sources MicroPython's make cannot reach by itself
MAIN_PY = "import pedal.main\npedal.main.boot()\n"


def microdot_dir():
    """The folder of the installed microdot package.

    Raises:
        FirmwareError: microdot is not installed.
    """
    spec = importlib.util.find_spec("microdot")
    if spec is None or not spec.submodule_search_locations:
        raise FirmwareError("the microdot package is not installed: run `make install`")
    return list(spec.submodule_search_locations)[0]


def build_dir(board_name):
    """The default output folder of a board's build: build/<board>."""
    return os.path.join(paths.BUILD_DIR, board_name)


def read_record(out):
    """The BUILD.json in `out`, or None when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(out, RECORD_NAME), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return None
    return record


def firmware_files(board, stage):
    """The files that make up the firmware of `board` (a Board): its manifest.py, read
    with `stage` as the folder of the staged microdot and boardinfo.py.

    Returns:
        a list of tonebridge.boards.manifests.Frozen, sorted by target.
    Raises:
        FirmwareError: the manifest failed (e.g. a package without modules).
    """
    return read_manifest(os.path.join(board.directory, "manifest.py"), options={"stage": os.path.abspath(stage)})


def stage_sources(board, stage, microdot):
    """Copy into `stage` what the manifest takes from there: every module of the microdot
    package (`microdot`, a folder) as microdot/*.py, and the board's board.py as
    boardinfo.py.

    Files are rewritten only when they differ, so MicroPython's make sees stable mtimes.
    """
    pairs = [(os.path.join(board.directory, "board.py"), os.path.join(stage, "boardinfo.py"))]
    for name in sorted(os.listdir(microdot)):
        if name.endswith(".py"):
            pairs.append((os.path.join(microdot, name), os.path.join(stage, "microdot", name)))
    for source, target in pairs:
        with open(source, "rb") as f:
            data = f.read()
        try:
            with open(target, "rb") as f:
                if f.read() == data:
                    continue
        except OSError:
            pass
        os.makedirs(os.path.dirname(target), exist_ok=True)
        write_atomic(target, data)


def _plan(board, frozen):
    """What the build makes: a list of (output path, kind, source path or text, name for tracebacks).

    kind: "mpy" (compile the source), "copy" (copy it), "text" (write the text).
    """
    plan = [("lib/" + entry.target[:-3] + ".mpy", "mpy", entry.source, entry.target) for entry in frozen]
    for name in board.ca_files:
        path = os.path.join(board.directory, "ca", name)
        if not os.path.isfile(path):
            raise FirmwareError("%s is missing: run `tonebridge firmware refresh-cas`" % path)
        plan.append(("ca/" + name, "copy", path, None))
    if not board.simulated:  # the simulated pedal starts with `micropython -m simboard.boot`
        plan.append(("main.py", "text", MAIN_PY, None))
    return plan


def build(board, out=None, root=None, microdot=None):
    """Build the on-flash firmware of `board` into `out` (default build/<board>).

    Args:
        board: a board name (a folder of <root>/boards).
        out: the output folder.
        root: the source tree, a folder with boards/, firmware/ and shared/ (default:
            tonebridge.paths.ROOT, the checkout or the copy installed with the package).
        microdot: the microdot package folder (default: the installed package).

    Returns:
        the BUILD.json record, plus "out" (the folder) and "rebuilt" (the outputs made
        this time; empty when everything was up to date).

    Raises:
        UsageError: unknown board.
        FirmwareError: a source is missing, mpy-cross failed, or the build does not fit
            the board's filesystem.
    """
    info = load_board(board, boards_dir_of(root))
    out = out or build_dir(info.name)
    stage = os.path.join(out, STAGE)
    stage_sources(info, stage, microdot or microdot_dir())
    plan = _plan(info, firmware_files(info, stage))
    try:
        compiler = mpy_cross_version()
    except BuildError as error:
        raise FirmwareError(str(error)) from None
    previous = read_record(out) or {}
    reusable = previous.get("mpy_cross") == compiler and previous.get("arch", False) == info.arch
    old_sources = previous.get("sources", {}) if reusable else {}
    old_files = previous.get("files", {})

    files, sources, rebuilt = {}, {}, []
    for rel, kind, source, name in plan:
        target = os.path.join(out, *rel.split("/"))
        source_hash = hashlib.sha256(source.encode()).hexdigest() if kind == "text" else file_sha256(source)
        known = old_files.get(rel)
        current = file_sha256(target) if os.path.isfile(target) else None
        if not (old_sources.get(rel) == source_hash and isinstance(known, dict) and known.get("sha256") == current):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if kind == "mpy":
                try:
                    compile_file(source, target, info.arch, source_name=name)
                except BuildError as error:
                    raise FirmwareError(str(error)) from None
            elif kind == "copy":
                shutil.copyfile(source, target)
            else:
                write_atomic(target, source.encode())
            current = file_sha256(target)
            rebuilt.append(rel)
        files[rel] = {"size": os.path.getsize(target), "sha256": current}
        sources[rel] = source_hash

    for rel in sorted(set(old_files) - set(files)):  # e.g. a module deleted from firmware/pedal
        try:
            os.remove(os.path.join(out, *rel.split("/")))
        except OSError:
            pass
        _prune_empty_dirs(out, os.path.dirname(rel))

    total = sum(entry["size"] for entry in files.values())
    record = {
        "board": info.name,
        "arch": info.arch,
        "tonebridge": __version__,
        "mpy_cross": compiler,
        "total_bytes": total,
        "files": files,
        "sources": sources,
    }
    write_atomic(os.path.join(out, RECORD_NAME), (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
    if total > info.fs_bytes:
        raise FirmwareError("the %s build is %d bytes, more than the board's %d-byte filesystem"
                            % (info.name, total, info.fs_bytes))
    result = dict(record)
    result.update({"out": out, "rebuilt": rebuilt})
    return result


def _prune_empty_dirs(out, rel_dir):
    while rel_dir:
        try:
            os.rmdir(os.path.join(out, *rel_dir.split("/")))
        except OSError:
            return
        rel_dir = os.path.dirname(rel_dir)
