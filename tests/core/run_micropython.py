"""Run tests/core under MicroPython, from modules compiled with mpy-cross:

    python -m tonebridge.mpybuild build/mpy-test shared tests/core
    micropython -X heapsize=128k tests/core/run_micropython.py --path build/mpy-test

(`make test-micropython` does both.)  Without --path it imports the sources, which
needs a bigger heap: compiling source on the device heap is what a pedal never does.

Imports every test_*.py module, runs each TestCase's test_* methods and
prints one line per failure and a closing `micropython: N passed, N failed` line.
Exit status 1 when anything failed.  Options: -v (name every test), a module name
or name prefix to run only those.
"""

import gc
import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."


def setup_path(argv):
    """Put the compiled tree (--path DIR) or the sources on sys.path; returns the test dir."""
    if "--path" in argv:
        where = argv[argv.index("--path") + 1]
        sys.path.insert(0, where + "/mp")
        sys.path.insert(0, where)
        return where
    sys.path.insert(0, HERE + "/mp")  # our unittest shim
    sys.path.insert(0, HERE)
    sys.path.insert(0, HERE + "/../../shared")
    return HERE


def test_modules(where, only):
    names = []
    for name in os.listdir(where):
        for ext in (".py", ".mpy"):
            if name.startswith("test_") and name.endswith(ext):
                names.append(name[: -len(ext)])
    return [n for n in sorted(names) if not only or any(n.startswith(o) for o in only)]


def run_case(cls, verbose, counts):
    for name in sorted(dir(cls)):
        if not name.startswith("test"):
            continue
        method = getattr(cls, name)
        if not callable(method):
            continue
        label = cls.__name__ + "." + name
        gc.collect()
        case = cls()
        try:
            case.setUp()
            try:
                method(case)
            finally:
                case.tearDown()
        except unittest.SkipTest as skip:
            counts[2] += 1
            if verbose:
                print("skip", label, "-", skip)
            continue
        except Exception as exc:  # noqa: BLE001 - report every failure the same way
            counts[1] += 1
            print("FAIL", label)
            sys.print_exception(exc)
            continue
        counts[0] += 1
        if verbose:
            print("ok  ", label)
        gc.collect()


def main(argv):
    where = setup_path(argv)
    import unittest as shim  # the shim: the unix port has no unittest

    globals()["unittest"] = shim
    verbose = "-v" in argv
    args = [a for i, a in enumerate(argv) if not (a == "--path" or (i and argv[i - 1] == "--path"))]
    only = [a for a in args if not a.startswith("-")]
    counts = [0, 0, 0]  # passed, failed, skipped
    peak = 0
    for mod_name in test_modules(where, only):
        try:
            module = __import__(mod_name)
        except Exception as exc:  # noqa: BLE001
            counts[1] += 1
            print("FAIL import", mod_name)
            sys.print_exception(exc)
            continue
        for attr in sorted(dir(module)):
            obj = getattr(module, attr)
            if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj is not unittest.TestCase:
                run_case(obj, verbose, counts)
        del sys.modules[mod_name]
        gc.collect()
        peak = max(peak, gc.mem_alloc())
    if verbose:
        print("heap in use after collection, worst module: %d bytes" % peak)
    line = "micropython: %d passed, %d failed" % (counts[0], counts[1])
    if counts[2]:
        line += ", %d skipped" % counts[2]
    print(line)
    return 1 if counts[1] else 0


sys.exit(main(sys.argv[1:]))
