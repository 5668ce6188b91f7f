"""The USB serial link benchmark (part of `make bench`; alone: `python -m tests.bench.link`).

One 1 MiB incompressible model (a WAV of noise), pushed to the simulated pedal with
`tonebridge pedal push --json` (a separate process, as a user runs it; its own timing,
PUT to verified COMMIT, is the one used):

* emulated UART (tonebridge.dev.linkemu) at 115200 and 921600 baud, with the pedal's
  260-byte receive ring modelled (the pedal announces the "uart" link settings):
  goodput = file bytes / push time / line rate (baud/10).  Goals: >= 0.95 and >= 0.90.
* raw pty (no emulator): goodput, against a raw byte copy of the same file into the
  simulated pedal (the REPL reads exactly that many bytes from stdin into a file on
  its flash; goal >= 0.5) and against `mpremote cp` of the same file to the same pedal
  (`resume`, so that mpremote does not soft-reset the unix port; goal >= 10x).
* resume: at 921600 the cable is pulled once half the file's bytes are on the line;
  the push fails, the cable is plugged in again and the push is run again: payload
  bytes sent twice = (highest offset sent before) - (offset the pedal resumed at).
  Goal: <= one window (the pedal's HELLO `window`).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import serial

from tonebridge.dev.linkemu import LinkEmulator
from tonebridge.link.session import PedalLink
from tonebridge.dev.simulator import SimulatedPedal

SIZE = 1024 * 1024
NO_API = "http://127.0.0.1:9/api/v1"
TONEBRIDGE = [sys.executable, "-m", "tonebridge"]
MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")
PTY_RUNS = 3
GOALS = {"uart_115200": 0.95, "uart_921600": 0.90, "pty_vs_raw_copy": 0.5, "pty_vs_mpremote": 10.0}


def note(text):
    print("bench: " + text, file=sys.stderr, flush=True)


def noise_wav(path, size=SIZE, seed=b"bench"):
    """A WAV file of `size` bytes whose samples are SHA-256 output: incompressible."""
    import hashlib
    import struct

    body = bytearray()
    block = seed
    while len(body) < size - 44:
        block = hashlib.sha256(block).digest()
        body += block
    body = bytes(body[:size - 44])
    head = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(body), b"WAVE", b"fmt ", 16, 1, 1, 48000, 96000, 2, 16,
                       b"data", len(body))
    with open(path, "wb") as f:
        f.write(head + body)
    return path


def cli_push(port, path, model_id, timeout=600):
    done = subprocess.run(TONEBRIDGE + ["pedal", "push", path, "--id", str(model_id), "--port", port, "--json"],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError("push failed: %s" % done.stderr.strip())
    return json.loads(done.stdout)


def start_pedal(work, name, **env):
    base = {"TONEBRIDGE_SYNC_ON_BOOT": "0"}
    base.update(env)
    sim = SimulatedPedal(NO_API, os.path.join(work, name + ".img"), env=base)
    sim.start()
    return sim


def measure_uart(work, path, baud):
    sim = start_pedal(work, "uart%d" % baud, TONEBRIDGE_LINK="uart")
    try:
        with LinkEmulator(sim.serial_path, baud=baud, rx_buffer=260, rx_pending=sim.rx_pending) as emu:
            result = cli_push(emu.host_path, path, 1000 + baud % 997)
            stats = emu.stats()
        line = baud / 10.0
        goodput = result["size"] / result["elapsed_s"] / line
        note("uart %d: %.3f of line rate (%.1f s), overflow drops %d, rewinds %d" % (
            baud, goodput, result["elapsed_s"], stats["overflow_dropped"], result["rewinds"]))
        return {"baud": baud, "seconds": round(result["elapsed_s"], 3), "goodput_fraction": round(goodput, 4),
                "overflow_dropped": stats["overflow_dropped"], "rewinds": result["rewinds"],
                "late_s": stats["late_s"], "to_pedal_bytes": stats["to_pedal_bytes"]}
    finally:
        sim.stop()


def measure_resume(work, path, baud=921600):
    sim = start_pedal(work, "resume", TONEBRIDGE_LINK="uart")
    try:
        with LinkEmulator(sim.serial_path, baud=baud, rx_buffer=260, rx_pending=sim.rx_pending) as emu:
            port = serial.Serial(emu.host_path, 115200, exclusive=True)
            pedal = PedalLink(port)
            pedal.hello()
            window = pedal.info["window"]
            emu.disconnect_after(SIZE // 2)
            try:
                pedal.push(path, 2000)
                raise RuntimeError("the push survived a pulled cable")
            except Exception as exc:  # noqa: BLE001 - the failure is what we wait for
                note("resume: first push stopped: %s" % exc)
            sent_before = pedal.transfer.high
            try:
                port.close()
            except OSError:
                pass
            emu.reconnect()
            time.sleep(0.1)
            again = PedalLink(serial.Serial(emu.host_path, 115200, exclusive=True))
            again.hello()
            result = again.push(path, 2000)
            again.close()
        overhead = sent_before - result.resumed_from
        note("resume: %d bytes sent before, resumed at %d: %d sent twice (window %d)" % (
            sent_before, result.resumed_from, overhead, window))
        return {"sent_before_disconnect": sent_before, "resumed_from": result.resumed_from,
                "resent_bytes": overhead, "window": window, "sha256_ok": result.sha256 is not None}
    finally:
        sim.stop()


def raw_repl(port, code, timeout=20):
    """Run `code` in the raw REPL (already entered); returns after "OK"."""
    port.write(code.encode() + b"\x04")
    read_until(port, b"OK", timeout)


def read_until(port, marker, timeout):
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(marker):
        if time.monotonic() > deadline:
            raise RuntimeError("no %r from the REPL; got %r" % (marker, data[-200:]))
        data += port.read(1) or b""
    return data


def measure_pty(work, path):
    sim = start_pedal(work, "pty")
    out = {}
    try:
        pushes = [cli_push(sim.serial_path, path, 3000 + run) for run in range(PTY_RUNS)]
        best = min(p["elapsed_s"] for p in pushes)
        out["push_seconds"] = [round(p["elapsed_s"], 4) for p in pushes]
        out["push_mbps_best"] = round(SIZE / best / 1e6, 2)
        time.sleep(0.5)
        # Ctrl-C: the firmware leaves; the unix port's REPL reads stdin from now on
        port = serial.Serial(sim.serial_path, 115200, timeout=0.5, exclusive=True)
        port.write(b"\r\x03")
        read_until(port, b">>> ", 20)
        port.write(b"\r\x01")
        read_until(port, b"raw REPL; CTRL-B to exit\r\n>", 20)
        data = open(path, "rb").read()
        copies = []
        for run in range(PTY_RUNS):
            code = ("import sys\nb=bytearray(4096)\nf=open('/flash/raw%d.bin','wb')\nn=%d\n"
                    "while n:\n k=sys.stdin.buffer.readinto(b) if n>=4096 else sys.stdin.buffer.readinto(memoryview(b)[:n])\n"
                    " f.write(b if k==4096 else memoryview(b)[:k])\n n-=k\nf.close()\nprint('copied')\n") % (run, len(data))
            raw_repl(port, code)
            started = time.monotonic()
            port.write(data)
            read_until(port, b"copied", 120)
            copies.append(time.monotonic() - started)
            read_until(port, b"\x04>", 20)
        port.write(b"\r\x02")  # back to the friendly REPL, as mpremote leaves it
        port.close()
        out["raw_copy_seconds"] = [round(s, 4) for s in copies]
        mp = []
        for run in range(PTY_RUNS):
            started = time.monotonic()
            done = subprocess.run([MPREMOTE, "connect", sim.serial_path, "resume", "cp", path, ":/flash/mp%d.bin" % run],
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError("mpremote cp failed: %s" % done.stderr.strip()[-300:])
            mp.append(time.monotonic() - started)
        out["mpremote_seconds"] = [round(s, 3) for s in mp]
        out["raw_copy_mbps_best"] = round(SIZE / min(copies) / 1e6, 2)
        out["mpremote_mbps_best"] = round(SIZE / min(mp) / 1e6, 3)
        out["vs_raw_copy"] = round(min(copies) / best, 3)
        out["vs_mpremote"] = round(min(mp) / best, 1)
        note("pty: push %.1f MB/s, raw copy %.1f MB/s (%.2fx), mpremote cp %.2f MB/s (push is %.0fx)" % (
            out["push_mbps_best"], out["raw_copy_mbps_best"], out["vs_raw_copy"], out["mpremote_mbps_best"],
            out["vs_mpremote"]))
        return out
    finally:
        sim.stop()


def measure_link(work):
    path = noise_wav(os.path.join(work, "noise.wav"))
    found = {"file_bytes": SIZE, "goals": GOALS}
    for baud in (921600, 115200):
        found["uart_%d" % baud] = measure_uart(work, path, baud)
    found["pty"] = measure_pty(work, path)
    found["resume"] = measure_resume(work, path)
    found["met"] = {
        "uart_115200": found["uart_115200"]["goodput_fraction"] >= GOALS["uart_115200"],
        "uart_921600": found["uart_921600"]["goodput_fraction"] >= GOALS["uart_921600"],
        "pty_vs_raw_copy": found["pty"]["vs_raw_copy"] >= GOALS["pty_vs_raw_copy"],
        "pty_vs_mpremote": found["pty"]["vs_mpremote"] >= GOALS["pty_vs_mpremote"],
        "resume_within_window": found["resume"]["resent_bytes"] <= found["resume"]["window"],
    }
    return found


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="tonebridge-bench-link-") as work:
        json.dump(measure_link(work), sys.stdout, indent=2, sort_keys=True)
        print()


if __name__ == "__main__":
    main()
