"""The pedal firmware on the host: board facts, the on-flash build, deploy over USB.

    boards/<board>/board.py      the board's facts (plain literals), installed as `boardinfo`
    boards/<board>/ca/*.der      the CA roots the pedal trusts (refresh_cas() rewrites them)
    boards/<board>/manifest.py   a MicroPython freeze manifest (for a custom image)

`build(board)` compiles the firmware with mpy-cross for the board's architecture into
the layout a stock MicroPython board runs from its flash:

    build/<board>/main.py                 `import pedal.main; pedal.main.boot()` (not on unix_sim)
    build/<board>/lib/boardinfo.mpy       boards/<board>/board.py
    build/<board>/lib/tonecore/*.mpy      shared/tonecore
    build/<board>/lib/pedal/*.mpy         firmware/pedal
    build/<board>/lib/microdot/*.mpy      __init__, microdot, helpers of the microdot pip package
    build/<board>/ca/*.der                the board's CA_FILES
    build/<board>/BUILD.json              what was built (see below)
    build/<board>/stage/                  microdot/ and boardinfo.py as sources, for manifest.py

BUILD.json:

    {"board": "esp32_generic", "arch": "xtensawin" | null, "tonebridge": "0.1.0",
     "mpy_cross": "<mpy-cross --version>", "total_bytes": 312345,
     "files": {"lib/tonecore/auth.mpy": {"size": 1234, "sha256": "<hex>"}, ...},
     "sources": {"lib/tonecore/auth.mpy": "<sha256 of the source>", ...}}

A build is incremental: an output is remade only when its source's SHA-256, the
architecture or the mpy-cross version changed, or the output itself was altered.

`deploy(board, port)` copies the build to a board running stock MicroPython with one
mpremote command chain: only the files whose SHA-256 differs from the record the last
deploy left on the board (`/.tonebridge-build.json`), or every file when there is none;
files the new build no longer has are removed; then the board is reset.

Errors are FirmwareError (a ToneError: the CLI prints one line and exits 1) or
UsageError (an unknown board, a board that cannot be deployed to: exit 2).
"""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import click

from tonebridge import __version__

from tonebridge import paths
from tonebridge.boards.mpycross import BuildError, compile_file, mpy_cross_version
from tonecore.errors import ToneError, UsageError
from tonecore.formats import runnable

ROOT = paths.ROOT
BOARDS_DIR = paths.BOARDS_DIR
FIRMWARE_DIR = paths.FIRMWARE_DIR
SHARED_DIR = paths.SHARED_DIR
BUILD_DIR = paths.BUILD_DIR

RECORD_NAME = "BUILD.json"
BOARD_RECORD = ".tonebridge-build.json"  # in the board's FS_ROOT
MAIN_PY = "import pedal.main\npedal.main.boot()\n"
MICRODOT_FILES = ("__init__.py", "microdot.py", "helpers.py")

PLATFORMS = ("nam", "ir", "aida-x", "aa-snapshot", "proteus")
SIZES = ("standard", "lite", "feather", "nano", "custom")
SERIAL_KINDS = ("uart", "usb-cdc", "usb-serial-jtag", "pty")

# The roots a board may trust: file name -> the certificate's subject common name.
CA_ROOTS = {
    "isrg-root-x1.der": "ISRG Root X1",  # Let's Encrypt, RSA
    "isrg-root-x2.der": "ISRG Root X2",  # Let's Encrypt, ECDSA
    "gts-root-r1.der": "GTS Root R1",  # Google Trust Services, RSA
    "gts-root-r4.der": "GTS Root R4",  # Google Trust Services, ECDSA
}

DEPLOY_TIMEOUT_S = 900  # a full copy of ~300 KB through the raw REPL takes well under a minute
PROBE_TIMEOUT_S = 30


class FirmwareError(ToneError):
    """A build or a deploy failed; the message says what to do."""


def _is_int(value):
    return type(value) is int and value >= 0


def _is_str(value):
    return type(value) is str and value != ""


def _is_usb_ids(value):
    return type(value) is tuple and all(
        type(entry) is tuple and len(entry) == 3 and _is_int(entry[0]) and _is_int(entry[1]) and _is_str(entry[2])
        for entry in value
    )


def _is_pins(value):
    return type(value) is dict and all(_is_str(key) and _is_int(pin) for key, pin in value.items())


def _is_formats(value):
    if type(value) is not dict:
        return False
    for platform, sizes in value.items():
        if platform not in PLATFORMS:
            return False
        if sizes != "*" and not (type(sizes) is tuple and sizes and all(size in SIZES for size in sizes)):
            return False
    return True


# Every field of a board.py and what makes its value valid (boards/README.md describes them).
FIELDS = {
    "NAME": _is_str,
    "TITLE": _is_str,
    "MCU": _is_str,
    "ARCH": lambda value: value is None or value in ("xtensawin", "rv32imc"),
    "FLASH_BYTES": _is_int,
    "FS_BYTES": _is_int,
    "BLOCK_SIZE": lambda value: value == 4096,
    "FS_ROOT": lambda value: _is_str(value) and value.startswith("/"),
    "HEAP_BUDGET": _is_int,
    "PSRAM_BYTES": _is_int,
    "SERIAL": lambda value: value in SERIAL_KINDS,
    "USB_IDS": _is_usb_ids,
    "PINS": _is_pins,
    "FORMATS": _is_formats,
    "MAX_MODEL_BYTES": _is_int,
    "CA_FILES": lambda value: type(value) is tuple and all(_is_str(name) and name.endswith(".der") for name in value),
}


class Board:
    """One board's facts (`facts`: the board.py names, upper case) and its folder."""

    def __init__(self, name, directory, facts):
        self.name = name
        self.directory = directory
        self.facts = facts

    def __getattr__(self, field):
        # board.arch, board.fs_bytes, ... read the board.py names.
        try:
            return self.__dict__["facts"][field.upper()]
        except KeyError:
            raise AttributeError(field) from None

    def can_run(self, platform, size):
        """Whether the board runs a model of `platform` (e.g. "nam") and size class `size`."""
        return runnable(self.facts["FORMATS"], platform, size)

    def to_json(self):
        """The facts as a JSON-ready dict with lower-case keys."""
        facts = self.facts
        return {
            "name": self.name,
            "title": facts["TITLE"],
            "mcu": facts["MCU"],
            "arch": facts["ARCH"],
            "flash_bytes": facts["FLASH_BYTES"],
            "fs_bytes": facts["FS_BYTES"],
            "block_size": facts["BLOCK_SIZE"],
            "fs_root": facts["FS_ROOT"],
            "heap_budget": facts["HEAP_BUDGET"],
            "psram_bytes": facts["PSRAM_BYTES"],
            "serial": facts["SERIAL"],
            "usb_ids": [{"vid": vid, "pid": pid, "label": label} for vid, pid, label in facts["USB_IDS"]],
            "pins": dict(facts["PINS"]),
            "formats": {k: v if v == "*" else list(v) for k, v in facts["FORMATS"].items()},
            "max_model_bytes": facts["MAX_MODEL_BYTES"],
            "ca_files": list(facts["CA_FILES"]),
        }


def board_names(boards_dir=None):
    """The names of the boards in `boards_dir` (default: boards/; folders with a board.py), sorted."""
    boards_dir = boards_dir or BOARDS_DIR
    try:
        entries = os.listdir(boards_dir)
    except OSError:
        return []
    return sorted(name for name in entries if os.path.isfile(os.path.join(boards_dir, name, "board.py")))


def load_board(name, boards_dir=None):
    """Read and check boards/<name>/board.py.

    The file runs with no builtins, so it can hold literals and arithmetic only: the same
    text must load on MicroPython as the module `boardinfo`.

    Raises:
        UsageError: no such board.
        FirmwareError: the board.py is broken (a missing or invalid field).
    """
    boards_dir = boards_dir or BOARDS_DIR
    known = board_names(boards_dir)
    if name not in known:
        raise UsageError("unknown board %r; the boards are: %s" % (name, ", ".join(known) or "(none)"))
    directory = os.path.join(boards_dir, name)
    path = os.path.join(directory, "board.py")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    namespace = {"__builtins__": {}}
    try:
        exec(compile(text, path, "exec"), namespace)  # noqa: S102 - our own board files
    except Exception as error:  # noqa: BLE001 - any error in the file is the file's fault
        raise FirmwareError("%s: %s: %s" % (path, type(error).__name__, error)) from None
    facts = {}
    for field, valid in FIELDS.items():
        if field not in namespace:
            raise FirmwareError("%s: %s is missing" % (path, field))
        if not valid(namespace[field]):
            raise FirmwareError("%s: %s has an invalid value: %r" % (path, field, namespace[field]))
        facts[field] = namespace[field]
    if facts["NAME"] != name:
        raise FirmwareError("%s: NAME is %r, not the folder's name %r" % (path, facts["NAME"], name))
    return Board(name, directory, facts)


# --- build ---------------------------------------------------------------------------


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


def _python_files(package_dir):
    """Every .py under `package_dir` as (path, path relative to package_dir with /), sorted."""
    found = []
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                found.append((path, os.path.relpath(path, package_dir).replace(os.sep, "/")))
    return found


def microdot_dir():
    """The folder of the installed microdot package.

    Raises:
        FirmwareError: microdot is not installed.
    """
    spec = importlib.util.find_spec("microdot")
    if spec is None or not spec.submodule_search_locations:
        raise FirmwareError("the microdot package is not installed: run `make install`")
    return list(spec.submodule_search_locations)[0]


SIMULATOR_ONLY = ("sim.py", "flash.py")  # pedal modules only the simulated pedal needs


def _plan(board, firmware_dir, shared_dir, microdot):
    """What the build makes: a list of (output path, kind, source path or text, name for tracebacks).

    kind: "mpy" (compile the source), "copy" (copy it), "text" (write the text).
    """
    plan = []
    packages = (("tonecore", os.path.join(shared_dir, "tonecore")), ("pedal", os.path.join(firmware_dir, "pedal")))
    for package, directory in packages:
        modules = _python_files(directory) if os.path.isdir(directory) else []
        if not modules:
            raise FirmwareError("%s has no Python modules (no %s package to build)" % (directory, package))
        for path, rel in modules:
            if package == "pedal" and rel in SIMULATOR_ONLY and board.serial != "pty":
                continue  # a board has real flash and boots main.py
            name = package + "/" + rel
            plan.append(("lib/" + name[:-3] + ".mpy", "mpy", path, name))
    for name in MICRODOT_FILES:
        path = os.path.join(microdot, name)
        if not os.path.isfile(path):
            raise FirmwareError("%s is missing: reinstall microdot (`make install`)" % path)
        plan.append(("lib/microdot/" + name[:-3] + ".mpy", "mpy", path, "microdot/" + name))
    plan.append(("lib/boardinfo.mpy", "mpy", os.path.join(board.directory, "board.py"), "boardinfo.py"))
    for name in board.ca_files:
        path = os.path.join(board.directory, "ca", name)
        if not os.path.isfile(path):
            raise FirmwareError("%s is missing: run `tonebridge firmware refresh-cas`" % path)
        plan.append(("ca/" + name, "copy", path, None))
    if board.serial != "pty":  # the simulator starts with `micropython -m pedal.sim`
        plan.append(("main.py", "text", MAIN_PY, None))
    return plan


def _stage(out, board, microdot):
    """Sources for boards/<board>/manifest.py: <out>/stage/{microdot/*.py, boardinfo.py}.

    Files are rewritten only when they differ, so the port's make sees stable mtimes.
    """
    stage = os.path.join(out, "stage")
    pairs = [(os.path.join(microdot, name), os.path.join(stage, "microdot", name)) for name in MICRODOT_FILES]
    pairs.append((os.path.join(board.directory, "board.py"), os.path.join(stage, "boardinfo.py")))
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
        _write_atomically(target, data)


def _write_atomically(path, data):
    part = path + ".part"
    with open(part, "wb") as f:
        f.write(data)
    os.replace(part, path)


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


def build_dir(board_name):
    """The default output folder of a board's build: build/<board>."""
    return os.path.join(BUILD_DIR, board_name)


def build(board, out=None, boards_dir=None, firmware_dir=None, shared_dir=None, microdot=None):
    """Build the on-flash firmware of `board` into `out` (default build/<board>).

    Args:
        board: a board name (a folder of `boards_dir`).
        out: the output folder.
        boards_dir, firmware_dir, shared_dir: where boards/, firmware/ (with pedal/) and
            shared/ (with tonecore/) are; the repository's by default.
        microdot: the microdot package folder (default: the installed package).

    Returns:
        the BUILD.json record, plus "out" (the folder) and "rebuilt" (the outputs made
        this time; empty when everything was up to date).

    Raises:
        UsageError: unknown board.
        FirmwareError: a source is missing, mpy-cross failed, or the build does not fit
            the board's filesystem.
    """
    info = load_board(board, boards_dir)
    out = out or build_dir(info.name)
    microdot = microdot or microdot_dir()
    plan = _plan(info, firmware_dir or FIRMWARE_DIR, shared_dir or SHARED_DIR, microdot)
    try:
        compiler = mpy_cross_version()
    except BuildError as error:
        raise FirmwareError(str(error)) from None
    previous = read_record(out) or {}
    reusable = previous.get("mpy_cross") == compiler and previous.get("arch", False) == info.arch
    old_sources = previous.get("sources", {}) if reusable else {}
    old_files = previous.get("files", {})

    os.makedirs(out, exist_ok=True)
    _stage(out, info, microdot)
    files, sources, rebuilt = {}, {}, []
    for rel, kind, source, name in plan:
        target = os.path.join(out, *rel.split("/"))
        if kind == "text":
            source_hash = hashlib.sha256(source.encode()).hexdigest()
        else:
            source_hash = _sha256_file(source)
        known = old_files.get(rel)
        current = _sha256_file(target) if os.path.isfile(target) else None
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
                _write_atomically(target, source.encode())
            current = _sha256_file(target)
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
    _write_atomically(os.path.join(out, RECORD_NAME), (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
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


# --- deploy --------------------------------------------------------------------------


def mpremote_command():
    """How to run mpremote: `mpremote` on PATH, else beside this Python, else `python -m mpremote`.

    Raises:
        FirmwareError: mpremote is not installed.
    """
    found = shutil.which("mpremote")
    if found:
        return [found]
    beside = os.path.join(os.path.dirname(sys.executable), "mpremote")
    if os.path.isfile(beside):
        return [beside]
    if importlib.util.find_spec("mpremote") is not None:
        return [sys.executable, "-m", "mpremote"]
    raise FirmwareError("mpremote is not installed: run `make install` (or `pip install mpremote`)")


def _board_path(board, rel):
    root = board.fs_root.rstrip("/")
    return root + "/" + rel


def _device_script(remove, make_dirs):
    """MicroPython code that removes files and creates folders, ignoring what is already so."""
    return (
        "import os\n"
        "for p in %r:\n"
        "    try:\n"
        "        os.remove(p)\n"
        "    except OSError:\n"
        "        pass\n"
        "for d in %r:\n"
        "    try:\n"
        "        os.mkdir(d)\n"
        "    except OSError:\n"
        "        pass\n"
    ) % (tuple(remove), tuple(make_dirs))


RECORD_BEGIN = "<tonebridge-record>"
RECORD_END = "</tonebridge-record>"
RECORD_NONE = "<tonebridge-record-none>"


def _probe_script(path):
    """MicroPython code that prints the board's deploy record between markers."""
    return (
        "try:\n"
        "    f = open(%r)\n"
        "except OSError:\n"
        "    print(%r)\n"
        "else:\n"
        "    print(%r)\n"
        "    print(f.read())\n"
        "    f.close()\n"
        "    print(%r)\n"
    ) % (path, RECORD_NONE, RECORD_BEGIN, RECORD_END)


def parse_probe(output):
    """The record printed by _probe_script, or None (no record, or not a valid one)."""
    begin = output.find(RECORD_BEGIN)
    end = output.find(RECORD_END, begin + 1)
    if begin < 0 or end < 0:
        return None
    try:
        record = json.loads(output[begin + len(RECORD_BEGIN):end])
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return None
    return record


def deploy_command(mpremote, port, board, out, copy, remove, record_file):
    """The one mpremote command line of a deploy.

    Args:
        mpremote: the mpremote argv prefix (see mpremote_command()).
        port: the serial port (or an mpremote shortcut such as "auto").
        board: the Board.
        out: the build folder.
        copy: the build's files to copy (paths relative to `out`, with /).
        remove: files to delete on the board (same form).
        record_file: a local file holding the record to leave on the board.

    Returns:
        the argv: connect, exec (remove, mkdir), fs cp per folder, cp record, reset.
    """
    argv = list(mpremote) + ["connect", port]
    by_dir = {}
    for rel in sorted(copy):
        by_dir.setdefault(os.path.dirname(rel), []).append(rel)
    make_dirs = set()
    for rel_dir in by_dir:
        while rel_dir:
            make_dirs.add(rel_dir)
            rel_dir = os.path.dirname(rel_dir)
    ordered_dirs = sorted(make_dirs, key=lambda d: (d.count("/"), d))
    if remove or ordered_dirs:
        script = _device_script([_board_path(board, rel) for rel in sorted(remove)],
                                [_board_path(board, d) for d in ordered_dirs])
        argv += ["+", "exec", script]
    for rel_dir in sorted(by_dir):
        sources = [os.path.join(out, *rel.split("/")) for rel in by_dir[rel_dir]]
        target = _board_path(board, rel_dir).rstrip("/") + "/"
        argv += ["+", "fs", "cp", "-f"] + sources + [":" + target]
    argv += ["+", "fs", "cp", "-f", record_file, ":" + _board_path(board, BOARD_RECORD)]
    argv += ["+", "reset"]
    return argv


def _run_mpremote(argv, port, timeout_s):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise FirmwareError("mpremote is not installed: run `make install` (or `pip install mpremote`)") from None
    except subprocess.TimeoutExpired:
        raise FirmwareError("the board on %s does not answer (nothing for %d s); "
                            "press its reset button and try again" % (port, timeout_s)) from None
    if done.returncode != 0:
        raise FirmwareError(describe_mpremote_failure(port, done.stderr or done.stdout))
    return done.stdout


def describe_mpremote_failure(port, text):
    """One line for what mpremote printed when it failed."""
    low = text.lower()
    if "failed to access" in low:
        return ("cannot open %s: no such port, or another program (a serial monitor?) has it open"
                % port)
    if "no device found" in low:
        return "no board found on any USB serial port; plug it in or give --port"
    if "could not enter raw repl" in low or "could not connect" in low:
        return ("the board on %s does not answer: is MicroPython on it? "
                "(press its reset button and try again)" % port)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "mpremote failed on %s: %s" % (port, lines[-1] if lines else "no message")


def deploy(board, port, out=None, force=False, boards_dir=None, note=None):
    """Copy the build of `board` to the MicroPython board on `port`, then reset it.

    Args:
        board: the board name.
        port: a serial port such as /dev/ttyUSB0 (or mpremote's "auto").
        out: the build folder (default build/<board>).
        force: copy every file, whatever the board's record says.
        note: called with one-line progress messages (default: nothing).

    Returns:
        {"board", "port", "copied": [paths], "removed": [paths], "bytes": copied bytes}.

    Raises:
        UsageError: unknown board, or the simulator board.
        FirmwareError: no build, mpremote missing, the port busy, the board not answering.
    """
    info = load_board(board, boards_dir)
    if info.serial == "pty":
        raise UsageError("the %s board runs on this computer: start it with `tonebridge sim`" % info.name)
    out = out or build_dir(info.name)
    record = read_record(out)
    if record is None:
        raise FirmwareError("no build in %s: run `tonebridge firmware build --board %s` first" % (out, info.name))
    if record.get("board") != info.name:
        raise FirmwareError("%s holds a build for %s, not %s" % (out, record.get("board"), info.name))
    files = record["files"]
    for rel, entry in files.items():
        path = os.path.join(out, *rel.split("/"))
        if not os.path.isfile(path) or os.path.getsize(path) != entry.get("size"):
            raise FirmwareError("%s changed since the build: run `tonebridge firmware build --board %s` again"
                                % (path, info.name))
    note = note or (lambda message: None)
    mpremote = mpremote_command()

    on_board = None
    if not force:
        on_board = parse_probe(_run_mpremote(
            mpremote + ["connect", port, "+", "exec", _probe_script(_board_path(info, BOARD_RECORD))],
            port, PROBE_TIMEOUT_S))
    if on_board is None:
        copy, remove = sorted(files), []
    else:
        old = on_board["files"]
        copy = sorted(rel for rel in files if not isinstance(old.get(rel), dict)
                      or old[rel].get("sha256") != files[rel]["sha256"])
        remove = sorted(rel for rel in old if rel not in files)
    summary = {"board": info.name, "port": port, "copied": copy, "removed": remove,
               "bytes": sum(files[rel]["size"] for rel in copy)}
    if not copy and not remove:
        note("%s is up to date (%d files)" % (port, len(files)))
        return summary

    board_record = {key: record[key] for key in ("board", "arch", "tonebridge", "total_bytes", "files")
                    if key in record}
    record_file = os.path.join(out, "stage", BOARD_RECORD)
    os.makedirs(os.path.dirname(record_file), exist_ok=True)
    _write_atomically(record_file, json.dumps(board_record, sort_keys=True, separators=(",", ":")).encode())
    note("Copying %d files (%d bytes) to %s ..." % (len(copy), summary["bytes"], port))
    _run_mpremote(deploy_command(mpremote, port, info, out, copy, remove, record_file), port, DEPLOY_TIMEOUT_S)
    return summary


# --- CA roots ------------------------------------------------------------------------


def default_ca_bundle():
    """certifi's bundle when installed, else the system's."""
    try:
        import certifi

        return certifi.where()
    except ImportError:
        return "/etc/ssl/certs/ca-certificates.crt"


def _pem_blocks(text):
    """(label from a "# Label:" line or None, DER bytes) of each certificate in a PEM bundle."""
    import base64

    blocks, label, inside, lines = [], None, False, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# Label:"):
            label = line.split(":", 1)[1].strip().strip('"')
        elif line == "-----BEGIN CERTIFICATE-----":
            inside, lines = True, []
        elif line == "-----END CERTIFICATE-----":
            blocks.append((label, base64.b64decode("".join(lines))))
            inside, label = False, None
        elif inside:
            lines.append(line)
    return blocks


def _common_name(der, label):
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID
    except ImportError:  # pragma: no cover - cryptography comes with the dev install
        return label
    import warnings

    with warnings.catch_warnings():  # a few old roots in bundles have non-positive serial numbers
        warnings.simplefilter("ignore")
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if names else label


def refresh_cas(boards_dir=None, bundle=None):
    """Rewrite every board's ca/*.der (its CA_FILES) from a PEM bundle.

    Returns:
        the files written.

    Raises:
        FirmwareError: the bundle lacks a root, or a board names an unknown CA file.
    """
    boards_dir = boards_dir or BOARDS_DIR
    bundle = bundle or default_ca_bundle()
    with open(bundle, encoding="ascii", errors="replace") as f:
        blocks = _pem_blocks(f.read())
    by_name = {}
    for label, der in blocks:
        name = _common_name(der, label)
        if name:
            by_name.setdefault(name, der)
    written = []
    for board_name in board_names(boards_dir):
        board = load_board(board_name, boards_dir)
        for file_name in board.ca_files:
            if file_name not in CA_ROOTS:
                raise FirmwareError("%s: unknown CA file %s (known: %s)"
                                    % (board_name, file_name, ", ".join(sorted(CA_ROOTS))))
            der = by_name.get(CA_ROOTS[file_name])
            if der is None:
                raise FirmwareError("%s has no %s certificate" % (bundle, CA_ROOTS[file_name]))
            path = os.path.join(board.directory, "ca", file_name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_atomically(path, der)
            written.append(path)
    return written


# --- CLI -----------------------------------------------------------------------------


def _echo_json(value):
    click.echo(json.dumps(value, sort_keys=True, indent=2))


def _note(message):
    click.echo(message, err=True)


@click.group("firmware")
def firmware_group():
    """Pedal firmware: list the boards, build for one, deploy to a board over USB."""


@firmware_group.command("boards")
@click.option("--json", "as_json", is_flag=True, help="Print the boards' facts as JSON.")
def boards_command(as_json):
    """List the boards and their facts."""
    boards = [load_board(name) for name in board_names()]
    if as_json:
        _echo_json([board.to_json() for board in boards])
        return
    for board in boards:
        formats = "; ".join("%s %s" % (platform, sizes if sizes == "*" else ",".join(sizes))
                            for platform, sizes in board.formats.items())
        click.echo("%-14s %s" % (board.name, board.title))
        click.echo("%-14s arch %s · flash %s · filesystem %s · heap %s · PSRAM %s · serial %s"
                   % ("", board.arch or "bytecode", _size(board.flash_bytes), _size(board.fs_bytes),
                      _size(board.heap_budget), _size(board.psram_bytes), board.serial))
        click.echo("%-14s models: %s (largest file %s)" % ("", formats, _size(board.max_model_bytes)))


def _size(count):
    if count == 0:
        return "none"
    if count >= 1024 * 1024 and count % (1024 * 1024) == 0:
        return "%d MB" % (count // (1024 * 1024))
    return "%d KB" % (count // 1024)


@firmware_group.command("build")
@click.option("--board", required=True, metavar="BOARD", help="A board name (see `tonebridge firmware boards`).")
@click.option("--out", metavar="DIR", help="The output folder [default: build/BOARD].")
@click.option("--json", "as_json", is_flag=True, help="Print the build record as JSON.")
def build_command(board, out, as_json):
    """Compile the firmware for BOARD into the layout its flash needs."""
    result = build(board, out)
    if as_json:
        shown = {key: value for key, value in result.items() if key != "sources"}
        _echo_json(shown)
        return
    info = load_board(board)
    click.echo("Built %s (%s) in %s: %d files, %d bytes (%d%% of the %s filesystem); %s"
               % (info.name, info.arch or "bytecode", result["out"], len(result["files"]), result["total_bytes"],
                  100 * result["total_bytes"] // info.fs_bytes, _size(info.fs_bytes),
                  "%d rebuilt" % len(result["rebuilt"]) if result["rebuilt"] else "all up to date"))


@firmware_group.command("deploy")
@click.option("--board", required=True, metavar="BOARD", help="A board name (see `tonebridge firmware boards`).")
@click.option("--port", required=True, metavar="PORT", help="The serial port, e.g. /dev/ttyUSB0, COM3 or `auto`.")
@click.option("--out", metavar="DIR", help="The build folder [default: build/BOARD].")
@click.option("--force", is_flag=True, help="Copy every file, not only the changed ones.")
def deploy_command_cli(board, port, out, force):
    """Copy the build of BOARD to a board running MicroPython, then reset it."""
    summary = deploy(board, port, out, force, note=_note)
    if summary["copied"] or summary["removed"]:
        click.echo("Deployed %s to %s: %d files copied (%d bytes), %d removed; the board is restarting"
                   % (summary["board"], port, len(summary["copied"]), summary["bytes"], len(summary["removed"])))
    else:
        click.echo("%s on %s is up to date" % (summary["board"], port))


@firmware_group.command("refresh-cas")
@click.option("--bundle", metavar="PEM", help="A PEM bundle [default: certifi's, else the system's].")
def refresh_cas_command(bundle):
    """Rewrite boards/*/ca/*.der from a CA bundle."""
    for path in refresh_cas(bundle=bundle):
        click.echo(os.path.relpath(path))
