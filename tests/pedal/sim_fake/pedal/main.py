"""A stand-in for the pedal firmware's main, for tests/pedal/test_sim.py.

Compiled over the real firmware (`SimulatedPedal(overlay=…)`), so the real
`simboard.boot` and `simboard.flash` run and call `start(settings)` here. It counts boots
in /flash/boots.txt, writes the settings to /flash/settings.txt, really listens on the
portal address, prints the portal line, then does what $FAKE_PEDAL asks:

    echo        (default) echo every stdin line back as `echo: <line>`
    writeloop   rewrite /flash/data.bin forever, each generation one repeated byte
    flood       print 1 MB of console lines, then write /flash/after_flood.txt
    exit        print an error on stderr and exit with status 3 before the portal
"""

import os
import socket
import sys
import time


def load_modules():
    """What the real firmware loads on demand (the simulator's code probe calls it)."""


def _count_boots(root):
    path = root + "/boots.txt"
    try:
        with open(path) as f:
            boots = int(f.read())
    except OSError:
        boots = 0
    with open(path, "w") as f:
        f.write(str(boots + 1))


def _listen(host, port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(socket.getaddrinfo(host, port)[0][-1])
    server.listen(1)
    return server


def _idle():
    while True:
        time.sleep(1)


def _echo():
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            _idle()
        sys.stdout.buffer.write(b"echo: " + line)


def _write_loop(root):
    size = 3 * 4096 + 100  # several blocks: a torn update would mix generations
    chunk = bytearray(1024)
    generation = 0
    while True:
        generation += 1
        for i in range(len(chunk)):
            chunk[i] = generation & 255
        with open(root + "/data.bin", "wb") as f:
            left = size
            while left:
                n = min(left, len(chunk))
                f.write(memoryview(chunk)[:n])
                left -= n
        print("generation", generation)


def _flood(root):
    line = "log " + "x" * 95  # 100 bytes with the newline
    for _ in range(10000):
        print(line)
    with open(root + "/after_flood.txt", "w") as f:
        f.write("written after 1 MB of console output")
    print("flood: done")
    _idle()


def start(settings):
    mode = os.getenv("FAKE_PEDAL") or "echo"
    root = settings["fs_root"]
    if mode == "exit":
        sys.stderr.write("fake: cannot start the portal\n")
        sys.exit(3)
    _count_boots(root)
    with open(root + "/settings.txt", "w") as f:
        for key in ("api", "portal_host", "portal_port", "fs_root", "board"):
            f.write("%s=%s\n" % (key, settings[key]))
        f.write("ca_der=%s\n" % (None if settings["ca_der"] is None else len(settings["ca_der"])))
    server = _listen(settings["portal_host"], settings["portal_port"])
    print("portal: listening on http://%s:%d/" % (settings["portal_host"], settings["portal_port"]))
    if mode == "writeloop":
        _write_loop(root)
    elif mode == "flood":
        _flood(root)
    else:
        _echo()
    server.close()
