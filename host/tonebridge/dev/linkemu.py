"""A USB-UART link between the host tool and a (simulated) pedal, for tests and benchmarks.

    host (pyserial) -> host_path (a pty of ours) -> [queue, 4 KB] -> line -> target_path
    host            <- host_path                 <- [queue, 4 KB] <- line <- (the pedal's pty)

Each direction of the line, on its own (the line is full duplex):

1. throttle: baud/10 bytes per second (8N1), paced by a token bucket on time.monotonic
   in slices of about 0.5 ms; a byte arrives within about a millisecond of when an
   ideal line would deliver it (after an idle line, up to 2 ms of bytes go at once);
2. faults: each byte dropped with probability `drop_rate`, each bit flipped with
   probability `ber` (the gaps between faults are drawn from a geometric distribution,
   so a fault's position depends only on the byte count, not on how bytes were sliced);
3. host -> pedal only: the pedal's receive buffer.  A slice is delivered up to
   `rx_buffer - rx_pending()` bytes and the rest is dropped and counted, like the ESP32
   REPL UART's 260-byte ring with no flow control.  `rx_buffer=None`: no model, the
   pedal's pty back-pressures instead (native USB CDC: the host is NAKed, nothing lost).

The emulator reads from the host only as fast as the line takes bytes (at most 4 KB
waits inside it, like a USB-serial adapter's buffer), so the host's writes block in the
kernel once that and the pty's own buffer (~20 KB on Linux) are full.  Toward the host
there is no receive-buffer model; bytes for a host that has not opened `host_path` are
lost (a UART with nobody listening).

`stall(s)` stops both directions for a while; `disconnect()` pulls the cable (the host's
pty goes away: pyserial raises SerialException), `reconnect()` plugs a new one in (a new
`host_path`), `disconnect_after(n)` pulls it once n more bytes went to the pedal.

Limits: one Python thread paces both directions, and each of its system calls gives up
the GIL.  Another thread of the same process that keeps the GIL busy (pure-Python work:
it hands the GIL over only every `sys.getswitchinterval()`, 5 ms) slows the line down to
a fraction of its rate, as a catch-up is capped at 2 ms of line time (a late emulator
loses throughput rather than bursting past a receive buffer).  `stats()["late_s"]`
counts that lost line time: a benchmark should check it.  Run a CPU-heavy host as its
own process (the `tonebridge` CLI), or lower the switch interval to 0.5 ms.

    python -m tonebridge.dev.linkemu /dev/pts/7 --baud 115200 --drop-rate 1e-4
    host: /dev/pts/9
"""

import argparse
import errno
import json
import math
import os
import random
import select
import signal
import sys
import threading
import time
import tty

from tonebridge.dev.uartline import MAX_CATCH_UP_S, Direction, Faults, line_rate
from tonecore.errors import UsageError

TICK_S = 0.0005  # the pacing slice while bytes wait
HOST_PROBE_S = 0.005  # how often to look whether a host has opened host_path
READ_SIZE = 4096

TO_PEDAL = "to_pedal"
TO_HOST = "to_host"


class LinkEmulator:
    """A throttled, faulty USB-UART link from a pty of its own (`host_path`) to `target_path`.

    Args:
        target_path: the pedal's serial device, e.g. `SimulatedPedal.serial_path`.
        baud: the UART's baud rate; None: unthrottled.
        rx_buffer: the pedal's receive buffer in bytes (260 for the ESP32 REPL UART);
            None: no model (the pedal's pty back-pressures).
        rx_pending: a function returning how many bytes the pedal has received and its
            firmware not read yet (`SimulatedPedal.rx_pending`); needed with rx_buffer.
        drop_rate: the probability that a byte is lost on the line.
        ber: the probability that a bit is flipped on the line (bit error rate).
        seed: seeds the faults' random generators (one per direction).
        both_ways: faults toward the host too (else host -> pedal only).

    `drop_rate` and `ber` may be changed while it runs.  Use as a context manager, or
    call `start()` and `close()`.  `host_path` is the device for the host to open.
    """

    def __init__(self, target_path, baud=None, rx_buffer=None, rx_pending=None, drop_rate=0.0, ber=0.0,
                 seed=0, both_ways=True):
        if baud is not None and baud <= 0:
            raise UsageError("baud must be positive, not %r" % baud)
        if rx_buffer is not None and (rx_buffer < 0 or rx_pending is None):
            raise UsageError("rx_buffer needs rx_pending, a function telling the bytes the pedal has not read")
        self.target_path = target_path
        self.baud = baud
        self.rx_buffer = rx_buffer
        self.rx_pending = rx_pending
        self.seed = seed
        self.both_ways = both_ways
        self.host_path = None
        self._drop_rate = drop_rate
        self._ber = ber
        self._to_pedal = Direction(TO_PEDAL, line_rate(baud), Faults(random.Random("%s/%s" % (seed, TO_PEDAL))))
        self._to_host = Direction(TO_HOST, line_rate(baud), Faults(random.Random("%s/%s" % (seed, TO_HOST))))
        self._configure_faults()
        self._lock = threading.RLock()
        self._thread = None
        self._closing = False
        self._pedal_fd = None  # None once the pedal's pty has gone away
        self._host_fd = None  # the master of our pty; None while disconnected
        self._host_present = False  # a host has host_path open
        self._wake_r = self._wake_w = None
        self._stall_until = 0.0
        self._disconnect_countdown = None
        self._overflow = 0
        self._late_s = 0.0
        self._stalls = self._disconnects = self._reconnects = 0
        self.error = None  # what stopped the pump thread, if anything did

    # -- fault knobs ---------------------------------------------------------------

    def _fault_knob(name, doc):  # noqa: N805 - a property factory, used in the class body
        def get(self):
            return getattr(self, name)

        def set_(self, value):
            with self._lock:
                setattr(self, name, value)
                self._configure_faults()

        return property(get, set_, doc=doc)

    drop_rate = _fault_knob("_drop_rate", "The probability that a byte is lost on the line.")
    ber = _fault_knob("_ber", "The probability that a bit is flipped on the line.")
    del _fault_knob

    def _configure_faults(self):
        self._to_pedal.faults.configure(self._drop_rate, self._ber)
        self._to_host.faults.configure(self._drop_rate if self.both_ways else 0.0, self._ber if self.both_ways else 0.0)

    # -- life cycle ------------------------------------------------------------------

    def start(self):
        """Open both ends and start forwarding.

        Returns:
            self (`host_path` is set).
        Raises:
            UsageError: `target_path` cannot be opened.
        """
        if self._thread is not None:
            raise UsageError("a LinkEmulator starts once")
        try:
            self._pedal_fd = os.open(self.target_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as error:
            raise UsageError("cannot open %s: %s" % (self.target_path, error.strerror)) from None
        try:
            if os.isatty(self._pedal_fd):
                tty.setraw(self._pedal_fd)
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._open_host()
        except BaseException:
            self._close_fds()
            raise
        self._thread = threading.Thread(target=self._run, name="linkemu", daemon=True)
        self._thread.start()
        return self

    def close(self):
        """Stop forwarding and close every descriptor (bytes still queued are lost)."""
        with self._lock:
            self._closing = True
            self._wake()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            self._close_fds()

    def __enter__(self):
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def _close_fds(self):
        for name in ("_host_fd", "_pedal_fd", "_wake_r", "_wake_w"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        self._host_present = False

    def _open_host(self):
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # raw bytes both ways; kept after close
            self.host_path = os.ttyname(slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # so a read of the master says whether a host has the port open
        os.set_blocking(master, False)
        self._host_fd = master
        self._host_present = False
        self._to_pedal.last = self._to_host.last = None

    def _wake(self):
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"!")
            except BlockingIOError:
                pass  # already awake

    # -- controls --------------------------------------------------------------------

    def stall(self, seconds):
        """Deliver nothing either way for `seconds` (queued bytes wait, the host is
        back-pressured); returns at once."""
        with self._lock:
            self._stall_until = max(self._stall_until, time.monotonic() + seconds)
            self._stalls += 1
            self._wake()

    def disconnect(self):
        """Pull the cable: close the host's pty (its reads and writes fail from now on)
        and lose what is queued either way.  `host_path` becomes None."""
        with self._lock:
            self._disconnect()
            self._wake()

    def _disconnect(self):
        if self._host_fd is None:
            return
        self.host_path = None  # before the close: whoever sees the port fail sees this too
        os.close(self._host_fd)
        self._host_fd = None
        self._host_present = False
        self._disconnect_countdown = None
        self._to_pedal.discard()
        self._to_host.discard()
        self._disconnects += 1

    def reconnect(self):
        """Plug a cable in again: a new pty, a new `host_path` (after a `disconnect()`;
        while connected this pulls the cable first).

        Returns:
            the new `host_path`.
        """
        with self._lock:
            self._disconnect()
            self._open_host()
            self._reconnects += 1
            self._wake()
            return self.host_path

    def disconnect_after(self, count):
        """Pull the cable once `count` more bytes have gone onto the line toward the pedal
        (bytes lost to faults or to the receive buffer count: they were sent).  It stays
        armed until then (a `disconnect()` disarms it); `count=None` disarms it."""
        with self._lock:
            self._disconnect_countdown = count
            if count is not None and count <= 0:
                self._disconnect()
            self._wake()

    def stats(self):
        """What the link did so far, as a dict:

        to_pedal_bytes, to_host_bytes: bytes delivered each way;
        to_pedal_dropped, to_host_dropped: bytes lost to `drop_rate`;
        to_pedal_bits_flipped, to_host_bits_flipped: bits flipped by `ber`;
        overflow_dropped: bytes lost because the pedal's receive buffer was full;
        to_pedal_discarded, to_host_discarded: bytes lost to a disconnect, or because
            nobody had the other end open;
        stalls, disconnects, reconnects: how many of each;
        late_s: line time lost because the emulator's thread ran late (should be ~0);
        error: None, or why forwarding stopped.
        """
        with self._lock:
            found = {"overflow_dropped": self._overflow, "stalls": self._stalls, "disconnects": self._disconnects,
                     "reconnects": self._reconnects, "late_s": round(self._late_s, 6), "error": self.error}
            for way in (self._to_pedal, self._to_host):
                found.update({way.name + "_bytes": way.delivered, way.name + "_dropped": way.dropped,
                              way.name + "_bits_flipped": way.flipped, way.name + "_discarded": way.discarded})
            return found

    # -- the pump ------------------------------------------------------------------

    def _run(self):
        try:
            self._forward()
        except Exception as error:  # pragma: no cover - a bug, or rx_pending failed; kept for stats()
            self.error = "%s: %s" % (type(error).__name__, error)

    def _forward(self):
        while True:
            with self._lock:
                if self._closing:
                    return
                now = time.monotonic()
                self._fill()
                stalled = now < self._stall_until
                for way in (self._to_pedal, self._to_host):
                    self._pump(way, now, stalled)
                delay, watch = self._next_wake(now, stalled)
                wake_r = self._wake_r
            if delay is not None and delay <= MAX_CATCH_UP_S:
                if delay > 0:
                    time.sleep(delay)  # sub-millisecond; poll() would round up to 1 ms
                continue
            poller = select.poll()
            poller.register(wake_r, select.POLLIN)
            for fd, mask in watch.items():
                poller.register(fd, mask)
            events = poller.poll(None if delay is None else math.ceil(delay * 1000))
            if any(fd == wake_r for fd, _ in events):
                try:
                    while os.read(wake_r, 64):
                        pass
                except (BlockingIOError, OSError):
                    pass

    def _fill(self):
        """Read what the queues have room for: from the host, from the pedal."""
        if self._host_fd is not None and self._to_pedal.room() > 0:
            try:
                data = os.read(self._host_fd, self._to_pedal.room())
                self._host_present = True
            except BlockingIOError:
                data = b""
                self._host_present = True
            except OSError:  # EIO: nobody has host_path open
                data = b""
                self._host_present = False
            self._to_pedal.queue += data
        if self._pedal_fd is not None and self._to_host.room() > 0:
            try:
                data = os.read(self._pedal_fd, self._to_host.room())
                if not data:
                    raise OSError(errno.EIO, "the pedal's pty closed")
            except BlockingIOError:
                data = b""
            except OSError:  # the pedal's side went away (the simulated pedal stopped)
                self._lose_pedal()
                data = b""
            self._to_host.queue += data

    def _lose_pedal(self):
        os.close(self._pedal_fd)
        self._pedal_fd = None

    def _pump(self, way, now, stalled):
        """Move one slice of `way` through the line to its sink."""
        if stalled:
            way.last = now  # the line earns nothing while stalled
            way.backlog = False
            return
        self._late_s += way.refill(now)
        if way.out:
            self._write(way, way.out)
        if not way.out and way.queue:
            take = len(way.queue) if way.rate is None else min(len(way.queue), int(way.tokens))
            if way is self._to_pedal and self._disconnect_countdown is not None:
                take = min(take, self._disconnect_countdown)
            if take:
                chunk = way.queue[:take]
                del way.queue[:take]
                if way.rate is not None:
                    way.tokens -= take
                if way.faults is not None:
                    chunk, dropped, flipped = way.faults.apply(chunk)
                    way.dropped += dropped
                    way.flipped += flipped
                if way is self._to_pedal and self.rx_buffer is not None and self._pedal_fd is not None:
                    room = max(0, self.rx_buffer - self.rx_pending())
                    if len(chunk) > room:
                        self._overflow += len(chunk) - room
                        del chunk[room:]
                way.out += chunk
                self._write(way, way.out)
                if way is self._to_pedal and self._disconnect_countdown is not None:
                    self._disconnect_countdown -= take
                    if self._disconnect_countdown <= 0:
                        self._disconnect()
        way.backlog = bool(way.queue or way.out)

    def _write(self, way, data):
        """Write `data` (way.out) to the direction's sink; what it refuses stays in `data`."""
        sink = self._pedal_fd if way is self._to_pedal else (self._host_fd if self._host_present else None)
        way.blocked = False
        if sink is None:  # nobody at the other end: the bytes are lost on the wire
            way.discarded += len(data)
            del data[:]
            return
        try:
            written = os.write(sink, data)
        except BlockingIOError:
            written = 0
        except OSError:
            if way is self._to_pedal:
                self._lose_pedal()
            else:
                self._host_present = False
            way.discarded += len(data)
            del data[:]
            return
        way.delivered += written
        del data[:written]
        if data and way is self._to_pedal and self.rx_buffer is not None:
            self._overflow += len(data)  # a ring does not wait: what it cannot take is lost
            del data[:]
        way.blocked = bool(data)

    def _next_wake(self, now, stalled):
        """(seconds until the pump must run again or None, {fd: poll mask} to wake on)."""
        delays = []
        watch = {}
        if stalled:
            delays.append(self._stall_until - now)
        for way, source, sink in ((self._to_pedal, self._host_fd, self._pedal_fd),
                                  (self._to_host, self._pedal_fd, self._host_fd)):
            if source is not None and way.room() > 0 and (source != self._host_fd or self._host_present):
                watch[source] = watch.get(source, 0) | select.POLLIN
            if stalled or not (way.queue or way.out):
                continue
            if way.blocked and sink is not None:
                watch[sink] = watch.get(sink, 0) | select.POLLOUT
            elif way.rate is None:
                delays.append(0.0)
            else:
                delays.append(max(TICK_S, (1.0 - way.tokens) / way.rate))
        if self._host_fd is not None and not self._host_present:
            delays.append(HOST_PROBE_S)  # a master without a slave polls as hung up: look again soon
        return (min(delays) if delays else None), watch


def main(argv=None):
    """`python -m tonebridge.dev.linkemu TARGET`: print `host: /dev/pts/N`, forward until
    Ctrl-C or SIGTERM, then print the stats as JSON on stderr."""
    parser = argparse.ArgumentParser(prog="python -m tonebridge.dev.linkemu", description=__doc__.split("\n")[0])
    parser.add_argument("target", help="the pedal's serial device, e.g. what `tonebridge sim` prints as serial:")
    parser.add_argument("--baud", type=int, default=None, help="line rate (default: unthrottled)")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="probability that a byte is lost")
    parser.add_argument("--ber", type=float, default=0.0, help="probability that a bit is flipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one-way", action="store_true", help="faults only toward the pedal")
    args = parser.parse_args(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        emulator = LinkEmulator(args.target, baud=args.baud, drop_rate=args.drop_rate, ber=args.ber,
                                seed=args.seed, both_ways=not args.one_way)
        with emulator:
            print("host: %s" % emulator.host_path, flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
            print(json.dumps(emulator.stats()), file=sys.stderr)
    except UsageError as error:
        print("linkemu: error: %s" % error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
