"""Run tests/core under MicroPython, from modules compiled with mpy-cross:

    python -m tonebridge.boards.mpycross build/mpy-test shared tests/core
    MICROPYPATH=build/mpy-test micropython -X heapsize=128k -m run_micropython \
        --path build/mpy-test --heap 128k

(`make test-micropython` does both.)  The runner itself runs compiled too: on a pedal
the code is frozen or precompiled, never compiled on the device heap.  Started as
`micropython tests/core/run_micropython.py` without --path it imports the sources,
which needs a bigger heap.

Runs every test_*.py module in its own interpreter (same heap size, --heap, default
128k), each TestCase's test_* methods, and prints one line per failure and a closing
`micropython: N passed, N failed` line.  Exit status 1 when anything failed.
Options: -v (name every test, heap left in use per module), a module name or name
prefix to run only those.
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


def option(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def run_module(mod_name, verbose, counts):
    try:
        module = __import__(mod_name)
    except Exception as exc:  # noqa: BLE001
        counts[1] += 1
        print("FAIL import", mod_name)
        sys.print_exception(exc)
        return
    for attr in sorted(dir(module)):
        obj = getattr(module, attr)
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj is not unittest.TestCase:
            run_case(obj, verbose, counts)
    gc.collect()
    if verbose:
        print("%s: heap in use after collection %d bytes" % (mod_name, gc.mem_alloc()))


def run_isolated(argv, modules, verbose):
    """Each module in a fresh interpreter with the same heap: a test module's leftovers
    (fragmentation included) never decide whether the next one fits, as on a board
    that boots for each job."""
    heap = option(argv, "--heap", "128k")
    where = option(argv, "--path")
    tally = "/tmp/tonebridge-mp-tally-%d" % (int.from_bytes(os.urandom(4), "little"))
    counts = [0, 0, 0]
    try:
        for mod_name in modules:
            if where:  # the compiled runner, as the parent was started
                launch = "MICROPYPATH=%s %s -X heapsize=%s -m run_micropython --path %s" % (
                    where, sys.executable, heap, where)
            else:
                launch = "%s -X heapsize=%s %s" % (sys.executable, heap, __file__)
            command = "%s --one %s --tally %s%s" % (launch, mod_name, tally, " -v" if verbose else "")
            status = os.system(command)
            try:
                with open(tally) as f:
                    numbers = [int(n) for n in f.read().split()]
                os.remove(tally)
            except (OSError, ValueError):
                numbers = None
            if numbers is None or len(numbers) != 3:
                counts[1] += 1
                print("FAIL %s: the interpreter died (status %d)" % (mod_name, status))
                continue
            for i in range(3):
                counts[i] += numbers[i]
    finally:
        try:
            os.remove(tally)
        except OSError:
            pass
    return counts


def main(argv):
    where = setup_path(argv)
    import unittest as shim  # the shim: the unix port has no unittest

    globals()["unittest"] = shim
    verbose = "-v" in argv
    values = ("--path", "--heap", "--one", "--tally")
    args = [a for i, a in enumerate(argv) if not (a in values or (i and argv[i - 1] in values))]
    only = [a for a in args if not a.startswith("-")]
    one = option(argv, "--one")
    if one:
        counts = [0, 0, 0]
        run_module(one, verbose, counts)
        with open(option(argv, "--tally"), "w") as f:
            f.write("%d %d %d" % tuple(counts))
        return 0
    counts = run_isolated(argv, test_modules(where, only), verbose)
    line = "micropython: %d passed, %d failed" % (counts[0], counts[1])
    if counts[2]:
        line += ", %d skipped" % counts[2]
    print(line)
    return 1 if counts[1] else 0


sys.exit(main(sys.argv[1:]))
