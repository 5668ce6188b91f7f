"""Compile Python sources to MicroPython bytecode (.mpy) with mpy-cross.

Used to run the core's tests under the MicroPython unix port the way a pedal runs the
core (compiled bytecode, not source compiled on a small heap), to prove every core
module compiles for each board's architecture, and by the firmware build.
"""

import os
import shutil
import subprocess
import sys

ARCHES = ("x64", "x86", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensa", "xtensawin", "rv32imc")


class BuildError(Exception):
    """mpy-cross refused a file (the message holds its output)."""


def mpy_cross_command():
    """The mpy-cross executable: next to this interpreter, else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if os.path.exists(beside):
        return beside
    found = shutil.which("mpy-cross")
    if not found:
        raise BuildError("mpy-cross not found: run `make install`")
    return found


def mpy_cross_version():
    """The first line of `mpy-cross --version`, e.g. "MicroPython v1.29.0 …; mpy-cross emitting mpy v6.3"."""
    done = subprocess.run([mpy_cross_command(), "--version"], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError("mpy-cross --version: %s" % (done.stderr or done.stdout).strip())
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""


def compile_file(source, target, march=None, source_name=None):
    """Compile one .py file to `target` (.mpy).

    `source_name` is the file name recorded for tracebacks (default: `source` as given).

    Raises:
        BuildError: mpy-cross failed; the message has its diagnostics.
    """
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    cmd = [mpy_cross_command(), "-o", target]
    if march:
        cmd.append("-march=" + march)
    if source_name:
        cmd += ["-s", source_name]
    # The source path as given ends up in tracebacks: keep it short and relative.
    cmd.append(source)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError("mpy-cross %s: %s" % (source, (done.stderr or done.stdout).strip()))
    return target


def compile_tree(source_dir, target_dir, march=None, skip=()):
    """Compile every .py under `source_dir` into the same layout under `target_dir`.

    Returns:
        list of (source, target) pairs.
    """
    built = []
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py") or name in skip:
                continue
            source = os.path.join(root, name)
            rel = os.path.relpath(source, source_dir)
            target = os.path.join(target_dir, rel[:-3] + ".mpy")
            built.append((source, compile_file(source, target, march)))
    return built


def main(argv=None):
    """`python -m tonebridge.boards.mpycross OUT SRC_DIR[=PREFIX] ... [--march ARCH]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tonebridge.boards.mpycross", description=main.__doc__)
    parser.add_argument("out")
    parser.add_argument("sources", nargs="+", help="DIR or DIR=SUBDIR_OF_OUT")
    parser.add_argument("--march", choices=ARCHES)
    args = parser.parse_args(argv)
    count = 0
    try:
        for spec in args.sources:
            src, _, sub = spec.partition("=")
            count += len(compile_tree(src, os.path.join(args.out, sub) if sub else args.out, args.march))
    except BuildError as exc:
        print("mpybuild: error: %s" % exc, file=sys.stderr)
        return 1
    print("mpybuild: %d modules -> %s%s" % (count, args.out, " (%s)" % args.march if args.march else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
