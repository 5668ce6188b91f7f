"""Deploy: a firmware build copied to a board running stock MicroPython, over USB.

`deploy(board, port)` copies the build (tonebridge.boards.build) with one mpremote
command chain: only the files whose SHA-256 differs from the record the last deploy
left on the board (`/.tonebridge-build.json`), or every file when there is none; files
the new build no longer has are removed; then the board is reset.  The record goes
last but one, so an interrupted deploy leaves the old record and the next one copies
again whatever may be torn.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

from tonecore.errors import UsageError

from tonebridge.boards import FirmwareError
from tonebridge.boards.build import STAGE, build_dir, read_record
from tonebridge.boards.facts import load_board
from tonebridge.fileio import write_atomic

BOARD_RECORD = ".tonebridge-build.json"  # in the board's FS_ROOT
DEPLOY_TIMEOUT_S = 900  # a full copy of ~300 KB through the raw REPL takes well under a minute
PROBE_TIMEOUT_S = 30


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
        text = describe_mpremote_failure(port, done.stderr or done.stdout)
        # a --port that cannot be opened is a usage error, as in every other command
        raise (UsageError if _port_problem(done.stderr or done.stdout) else FirmwareError)(text)
    return done.stdout


def _port_problem(text):
    """Whether mpremote failed because the port could not be opened or found."""
    low = text.lower()
    return "failed to access" in low or "no device found" in low


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
        UsageError: unknown board, or the simulator board; the port cannot be opened (no
            such port, busy) or no board was found on USB (the exit code of a bad --port
            in every command).
        FirmwareError: no build, mpremote missing, the board not answering.
    """
    info = load_board(board, boards_dir)
    if info.simulated:
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
    record_file = os.path.join(out, STAGE, BOARD_RECORD)
    os.makedirs(os.path.dirname(record_file), exist_ok=True)
    write_atomic(record_file, json.dumps(board_record, sort_keys=True, separators=(",", ":")).encode())
    note("Copying %d files (%d bytes) to %s ..." % (len(copy), summary["bytes"], port))
    _run_mpremote(deploy_command(mpremote, port, info, out, copy, remove, record_file), port, DEPLOY_TIMEOUT_S)
    return summary
