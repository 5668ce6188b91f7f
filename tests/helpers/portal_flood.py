"""Hostile clients against the pedal's portal (webserver.py), for the tests (short) and
`make bench` (a minute, 1,000 connections).

`flood(host, port, seconds, rate, probe)` keeps idle connections, slowloris heads,
giant lines and header floods coming at about `rate` connections a second from a few
threads, while the caller's `probe()` (a normal request by the owner's phone) runs
every 0.25 s; it returns the number of hostile connections opened and the probe's
slowest answer in seconds.
"""

import itertools
import random
import socket
import threading
import time

KINDS = ("idle", "slowloris", "giant-line", "many-headers", "garbage", "half-close")


def _hostile(host, port, kind, hold_s):
    """One hostile connection of `kind`; returns once it is over (never raises)."""
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError:
        return False
    try:
        if kind == "idle":
            sock.sendall(b"GET / HTTP/1.1\r\n")
            time.sleep(hold_s)
        elif kind == "slowloris":
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            end = time.monotonic() + hold_s
            while time.monotonic() < end:
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.3)
        elif kind == "giant-line":
            sock.sendall(b"GET /" + b"a" * 400_000 + b" HTTP/1.1\r\n\r\n")
        elif kind == "many-headers":
            sock.sendall(b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 4000 + b"\r\n")
        elif kind == "garbage":
            sock.sendall(bytes(random.getrandbits(8) for _ in range(300)) + b"\r\n\r\n")
        elif kind == "half-close":
            sock.sendall(b"POST /sync HTTP/1.1\r\nContent-Length: 1000\r\n\r\nab")
            sock.shutdown(socket.SHUT_WR)
            time.sleep(hold_s)
        try:
            sock.recv(256)
        except OSError:
            pass
    except OSError:
        pass
    finally:
        sock.close()
    return True


def flood(host, port, seconds, rate, probe, hold_s=1.5):
    """Hostile connections at ~`rate`/s for `seconds` (idle and slow ones held open
    `hold_s`); `probe()` every 0.25 s.

    Returns:
        (hostile connections opened, slowest probe in seconds, probes run)
    """
    threads = max(2, int(rate * (hold_s + 0.5)))  # enough that held connections keep the rate
    stop = time.monotonic() + seconds
    opened = [0]
    kinds = itertools.cycle(KINDS)
    lock = threading.Lock()

    def worker():
        interval = threads / float(rate)
        while time.monotonic() < stop:
            started = time.monotonic()
            with lock:
                kind = next(kinds)
            if _hostile(host, port, kind, hold_s):
                with lock:
                    opened[0] += 1
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    slowest, probes = 0.0, 0
    while time.monotonic() < stop:
        started = time.monotonic()
        probe()
        slowest = max(slowest, time.monotonic() - started)
        probes += 1
        time.sleep(0.25)
    for thread in workers:
        thread.join(timeout=30)
    return opened[0], slowest, probes
