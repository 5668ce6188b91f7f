"""The simulated pedal: the real firmware under the MicroPython unix port.

`SimulatedPedal` stages the firmware as compiled bytecode (`.mpy`), creates the flash
image (a sparse file that `simboard.flash.FileBlockDev` mounts as littlefs), starts

    micropython -X heapsize=<board heap> -m simboard.boot

with the board's heap budget, and puts its console on a pseudo-terminal:

    firmware stdout+stderr --> pty master --> /dev/pts/N  (what a serial client opens)
                           +-> --log file (text lines only), and a ring of the last 200 console lines
    /dev/pts/N --> pty master --> firmware stdin           (raw bytes, both ways)

The --log file gets the console's text lines only: while a host holds a USB link
session, the console also carries the link's binary frames, which
tonebridge.dev.consolelog leaves out (the pty, and so the host, gets every byte).

Console output behaves like MicroPython's USB serial: while no program has the pty
open it is dropped (a UART with nobody listening), so a silent host never stalls the
firmware and nobody gets stale output on connecting; while a client has it open, the
firmware waits for the client to read, but only up to 0.5 s before that output is
dropped. Input is relayed with back-pressure: bytes the firmware does not read wait in
the pipe and then in the pty (a USB CDC link NAKs the host the same way). `rx_pending()`
says how many bytes are on their way to the firmware and not read by it yet (the link
emulator, tonebridge.dev.linkemu, models a UART's small receive ring with it).

The firmware is given its settings in the environment (see firmware/simboard/boot.py):
TONEBRIDGE_FLASH, TONEBRIDGE_API, TONEBRIDGE_PORTAL (HOST:PORT), TONEBRIDGE_CA (DER
file, optional), TONEBRIDGE_BOARD. It must print `portal: listening on http://HOST:PORT/`
once its portal listens; `start()` waits for that line.

Errors: `SimError` (a `ToneError`) when the firmware fails to start or stops by
itself; `UsageError` for a bad board, heap size, flash image or log path.

What is prepared before the process starts (the board, the staged firmware, the
micropython binary, the flash image, the heap) is in tonebridge.dev.simsetup; this
module is the running pedal only: one process and its pty relays, a little over 500
lines because the relays and their back-pressure rules belong together.
"""

import collections
import errno
import fcntl
import os
import re
import select
import selectors
import shutil
import signal
import socket
import subprocess
import struct
import sys
import tempfile
import termios
import threading
import time
import tty

from tonecore.errors import UsageError

from tonebridge.dev import EMULATOR_CLIENT_ID
from tonebridge.dev.consolelog import ConsoleText
from tonebridge.dev.simsetup import (
    DEFAULT_BOARD,
    SimError,
    code_heap,
    default_flash_path,
    ensure_flash,
    firmware_frozen,
    last_line,
    micropython_command,
    parse_heap,
    simulated_board,
    stage_firmware,
)

PORTAL_HOST = "127.0.0.1"
PIN_LINE = re.compile(r"owner: .* PIN (\d{6})\b")
PORTAL_LINE = re.compile(r"portal: listening on http://([^\s/]+):(\d+)/")
CONSOLE_LINES = 200  # lines kept in memory
MAX_LINE = 4096  # a longer run without a newline is cut into lines of this size
STOP_GRACE_S = 3.0  # SIGTERM, then SIGKILL after this long
STALLED_CLIENT_MS = 500  # console output a connected client does not take in this long is dropped

_READ_SIZE = 65536


def free_port(host=PORTAL_HOST):
    """A TCP port that is free on `host` right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _die_with_parent():
    """In the child, before exec: ask Linux to SIGKILL it when the thread that started it
    ends, so a killed `tonebridge sim` (or test run) leaves no pedal behind.  Elsewhere a
    no-op."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class SimulatedPedal:
    """The firmware running under the MicroPython unix port, console on a pty.

    Args:
        api: the API base URL the pedal talks to.
        flash: the flash image path (created sparse with the board's FS_BYTES if missing).
        heap: the heap the firmware has for its data, in bytes; default the board's
            HEAP_BUDGET.  The unix port cannot keep bytecode in flash the way a board
            with frozen firmware does, so the measured size of the loaded firmware
            (`code_heap`) is added on top: `-X heapsize` = heap + code.
        total_heap: the exact `-X heapsize` instead (nothing added).
        board: a folder of boards/ (unix_sim).
        ca: a DER CA certificate file for https, or None.
        log: a file the console's text lines are appended to (no link frames), or None.
        env: extra environment for the firmware (applied last).
        portal_port: the portal's port; default a free one.
        overlay: a directory of .py sources compiled over the firmware (tests).
        lib: an already staged library directory (see `stage_firmware`); skips staging.

    Use as a context manager, or call `start()` and then `stop()` or `kill()`.
    """

    def __init__(self, api, flash, heap=None, board=DEFAULT_BOARD, ca=None, log=None, env=None,
                 portal_port=None, overlay=None, lib=None, total_heap=None):
        self.board = board
        self.info = simulated_board(board)
        self.data_heap = heap if heap is not None else self.info.heap_budget
        self.total_heap = total_heap
        self.heap = None  # -X heapsize, known once the firmware is staged
        self.code_bytes = None
        self.frozen = False  # the interpreter has the firmware frozen in
        self.api = api
        self.flash = os.path.abspath(flash)
        self.ca = os.path.abspath(ca) if ca else None
        self.log_path = log
        self.env = dict(env or {})
        self.portal_port = portal_port
        self.overlay = overlay
        self.lib = lib
        self.portal_url = None
        self.pairing_pin = None  # the newest pairing PIN the console showed
        self.serial_path = None
        self.dropped_bytes = 0  # console bytes nobody read from the pty
        self._proc = None
        self._master = None
        self._lock_fd = None
        self._log = None
        self._log_text = {}  # stream -> ConsoleText: what of it goes to the log
        self._staging = None
        self._wake_r = self._wake_w = None
        self._stdin_r = self._stdin_w = None  # the firmware's stdin pipe; the read end only for FIONREAD
        self._rx_lock = threading.Lock()  # makes a relay read and its `_rx_held` one step
        self._rx_held = 0  # bytes the input relay took from the pty and has not written yet
        self._threads = []
        self._lines = collections.deque(maxlen=CONSOLE_LINES)  # (sequence number, text)
        self._stderr_lines = collections.deque(maxlen=20)
        self._seq = 0
        self._waiters = []  # (test(seq, text), [matched line]) of wait_for_console calls
        self._partial = {}
        self._output_closed = False
        self._changed = threading.Condition()

    # -- life cycle ------------------------------------------------------------------

    def start(self, timeout=20):
        """Start the firmware and wait until its portal listens.

        Returns:
            self.
        Raises:
            UsageError: bad flash image or log file.
            SimError: the firmware stopped, or no portal line within `timeout` seconds.
        """
        if self._proc is not None:
            raise SimError("a SimulatedPedal starts once; make a new one to boot again")
        try:
            self._launch()
            line = self.wait_for_console(PORTAL_LINE.search, timeout, what="portal: listening on http://HOST:PORT/")
        except BaseException:
            self.kill()
            raise
        host, port = PORTAL_LINE.search(line).groups()
        if host in ("0.0.0.0", "localhost"):
            host = PORTAL_HOST
        self.portal_url = "http://%s:%s/" % (host, port)
        return self

    def _launch(self):
        ensure_flash(self.flash, self.info.fs_bytes, self.info.block_size)
        self._lock_flash()
        if self.log_path:
            try:
                self._log = open(self.log_path, "ab")
                self._log_text = {"stdout": ConsoleText(), "stderr": ConsoleText()}
            except OSError as error:
                raise UsageError("cannot open the log %s: %s" % (self.log_path, error.strerror or error)) from None
        lib = self.lib
        self.frozen = self.overlay is None and self.lib is None and firmware_frozen(micropython_command())
        if lib is None:
            self._staging = tempfile.mkdtemp(prefix="tonebridge-sim-")
            # With the firmware frozen into the interpreter there is nothing to stage.
            lib = self._staging if self.frozen else stage_firmware(self.board, self._staging, self.overlay)
        if self.total_heap is not None:
            self.heap = self.total_heap
        elif self.frozen:  # the code is in "flash", as on a board: the heap is the budget
            self.heap = self.data_heap
        else:
            self.code_bytes = code_heap(lib)
            self.heap = self.data_heap + -(-self.code_bytes // 4096) * 4096
        port = self.portal_port if self.portal_port is not None else free_port()
        env = dict(os.environ)
        env.update({
            "MICROPYPATH": ".frozen:" + os.path.abspath(lib),  # .frozen first keeps asyncio
            "TONEBRIDGE_FLASH": self.flash,
            "TONEBRIDGE_API": self.api,
            "TONEBRIDGE_PORTAL": "%s:%d" % (PORTAL_HOST, port),
            "TONEBRIDGE_BOARD": self.board,
            "TONEBRIDGE_FOOTSWITCH": self.footswitch_path,
            "TONEBRIDGE_HOST_PYTHON": sys.executable,  # sets O_NONBLOCK on its stdin (simboard.boot)
        })
        env.setdefault("TONEBRIDGE_CLIENT_ID", EMULATOR_CLIENT_ID)  # the emulator's demo app
        env.pop("TONEBRIDGE_CA", None)
        if self.ca:
            env["TONEBRIDGE_CA"] = self.ca
        env.update(self.env)

        self._master, slave = os.openpty()
        try:
            tty.setraw(slave)  # bytes pass untouched: no echo, no CR/LF mapping; kept after close
            self.serial_path = os.ttyname(slave)
        finally:
            os.close(slave)  # so the master sees POLLHUP while no client has the port open
        os.set_blocking(self._master, False)
        self._wake_r, self._wake_w = os.pipe()
        # Our own stdin pipe rather than subprocess.PIPE: the parent keeps the read end
        # (never reading from it) to ask FIONREAD how much the firmware has not read.
        self._stdin_r, self._stdin_w = os.pipe()
        os.set_blocking(self._stdin_w, False)  # the relay waits in poll, where it also sees `_wake_r`
        command = [micropython_command(), "-X", "heapsize=%d" % self.heap, "-m", "simboard.boot"]
        self._proc = subprocess.Popen(
            command, stdin=self._stdin_r, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=lib, bufsize=0,
            start_new_session=True,  # Ctrl-C in the terminal stops `tonebridge sim`, which stops this
            preexec_fn=_die_with_parent,  # and if that is killed outright, the pedal goes too
        )
        self._threads = [
            threading.Thread(target=self._relay_output, name="sim-console", daemon=True),
            threading.Thread(target=self._relay_input, name="sim-serial-in", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _lock_flash(self):
        fd = os.open(self.flash, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UsageError("flash image %s is in use by another simulated pedal" % self.flash) from None
        self._lock_fd = fd

    @property
    def pid(self):
        """The firmware's process id (None before `start`)."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self):
        """The firmware's exit status (negative: killed by that signal), None while it runs."""
        return self._proc.poll() if self._proc else None

    def stop(self):
        """Stop the firmware (SIGTERM, then SIGKILL after 3 s) and release everything.

        Returns:
            the exit status, or None if it was never started.
        """
        return self._end(signal.SIGTERM)

    def kill(self):
        """Cut the power: SIGKILL, no chance to flush or close anything."""
        return self._end(signal.SIGKILL)

    def _end(self, first_signal):
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(first_signal)
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        if proc is not None:
            proc.wait()
        if self._wake_w is not None:
            os.write(self._wake_w, b"x")
        for thread in self._threads:
            thread.join(5)
        self._threads = []
        if proc is not None:
            for stream in (proc.stdout, proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
        with self._rx_lock:  # not under a concurrent rx_pending()
            for name in ("_master", "_wake_r", "_wake_w", "_stdin_r", "_stdin_w", "_lock_fd"):
                fd = getattr(self, name)
                if fd is not None:
                    os.close(fd)
                    setattr(self, name, None)
        if self._log is not None:
            for text in self._log_text.values():
                self._log.write(text.close())
            self._log.close()
            self._log = None
        if self._staging:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        return proc.returncode if proc is not None else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait(self, timeout=None):
        """Block until the firmware stops by itself (its console closes).

        Raises:
            SimError: it stopped; the message has its exit status and last line.
            TimeoutError: still running after `timeout` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._output_closed, timeout):
                raise TimeoutError("the simulated pedal is still running")
        raise self._stopped_error()

    def rx_pending(self):
        """Bytes a serial client has written that the firmware has not read yet: those
        still in the pty, those the input relay holds, those in the firmware's stdin pipe.

        Exact up to about 68 KB pending (the pipe, the relay's read, the pty's line
        discipline); beyond that the pty keeps bytes in buffers FIONREAD does not count.
        A receive-buffer model (a few hundred bytes) stays far below.

        Returns:
            a count of bytes (0 before `start` and after `stop`).
        """
        with self._rx_lock:
            if self._master is None or self._stdin_r is None:
                return 0
            return _unread(self._master) + self._rx_held + _unread(self._stdin_r)

    # -- console ------------------------------------------------------------------

    def console_lines(self):
        """A copy of the last console lines (stdout and stderr), oldest first."""
        with self._changed:
            return [text for _, text in self._lines]

    @property
    def console_seq(self):
        """How many console lines have arrived so far (for `wait_for_console(since=…)`)."""
        with self._changed:
            return self._seq

    def wait_for_console(self, match, timeout=10, since=0, what=None):
        """Wait for a console line containing `match` (a str) or for which `match(line)`
        is true, among lines numbered >= `since` (see `console_seq`): those still in the
        ring and every line that arrives while waiting, however fast lines go by. `what`
        describes the line in the timeout error.

        Returns:
            the line.
        Raises:
            SimError: the firmware stopped first, or `timeout` seconds passed.
        """
        test = (lambda line: match in line) if isinstance(match, str) else match
        waiter = (lambda seq, text: seq >= since and test(text), [])  # checked by the relay on arrival
        with self._changed:
            for seq, text in self._lines:
                if waiter[0](seq, text):
                    return text
            self._waiters.append(waiter)
            try:
                self._changed.wait_for(lambda: waiter[1] or self._output_closed, timeout)
            finally:
                self._waiters.remove(waiter)
            if waiter[1]:
                return waiter[1][0]
            if self._output_closed:
                raise self._stopped_error()
            last = last_line(text for _, text in self._lines)
        what = what or (match if isinstance(match, str) else getattr(match, "__name__", "expected line"))
        raise SimError("no `%s` line on the pedal's console within %g s (last line: %s)" % (what, timeout, last or "none"))

    def _stopped_error(self):
        proc = self._proc
        status = proc.wait() if proc else None
        last = last_line(self._stderr_lines) or last_line(text for _, text in self._lines)
        how = "was killed by signal %d" % -status if status is not None and status < 0 else "exited with status %s" % status
        return SimError("the simulated pedal %s%s" % (how, ": " + last if last else ""))

    def _add_output(self, stream, data):
        """Split `data` from `stream` into console lines (called by the relay thread)."""
        buffered = self._partial.get(stream, b"") + data
        pieces = buffered.split(b"\n")
        rest = pieces.pop()
        while len(rest) > MAX_LINE:
            pieces.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._partial[stream] = rest
        if not pieces:
            return
        with self._changed:
            for piece in pieces:
                self._append_line(stream, piece.rstrip(b"\r"))
            self._changed.notify_all()

    def _append_line(self, stream, raw):
        """Add one line to the ring and hand it to waiting `wait_for_console` calls."""
        text = raw.decode("utf-8", "replace")
        self._lines.append((self._seq, text))
        if stream == "stderr":
            self._stderr_lines.append(text)
        for test, found in self._waiters:
            if not found and test(self._seq, text):
                found.append(text)
        pin = PIN_LINE.search(text)
        if pin:
            self.pairing_pin = pin.group(1)
        self._seq += 1

    # -- the pedal's owner -----------------------------------------------------------

    @property
    def footswitch_path(self):
        """The file that is the simulated footswitch: it is held while the file exists."""
        return self.flash + ".footswitch"

    def press_footswitch(self, hold_s=2.3):
        """Hold the footswitch for `hold_s` seconds (2 s open pairing on the page)."""
        with open(self.footswitch_path, "w"):
            pass
        try:
            time.sleep(hold_s)
        finally:
            os.unlink(self.footswitch_path)

    # -- relays ------------------------------------------------------------------

    def _relay_output(self):
        """Firmware stdout and stderr -> pty (dropping when full), log, line ring."""
        self._pty_out = select.poll()
        self._pty_out.register(self._master, select.POLLOUT)
        selector = selectors.DefaultSelector()
        selector.register(self._proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
        selector.register(self._proc.stderr.fileno(), selectors.EVENT_READ, "stderr")
        open_streams = 2
        try:
            while open_streams:
                for key, _ in selector.select():
                    data = os.read(key.fd, _READ_SIZE)
                    if not data:
                        selector.unregister(key.fd)
                        open_streams -= 1
                        continue
                    self._to_pty(data)
                    if self._log is not None:
                        self._log.write(self._log_text[key.data].feed(data))
                        self._log.flush()
                    self._add_output(key.data, data)
        finally:
            selector.close()
            with self._changed:
                for stream, rest in self._partial.items():
                    if rest:
                        self._append_line(stream, rest)
                self._partial.clear()
                self._output_closed = True
                self._changed.notify_all()

    def _to_pty(self, data):
        """Console bytes to the client of the pty, if there is one that keeps up."""
        view = memoryview(data)
        while view:
            events = self._pty_out.poll(STALLED_CLIENT_MS)
            if not events or events[0][1] & (select.POLLHUP | select.POLLERR):
                break  # nobody has the port open, or the client stopped reading
            try:
                view = view[os.write(self._master, view):]
            except BlockingIOError:
                continue
            except OSError as error:  # pragma: no cover - the client went away mid-write
                if error.errno != errno.EIO:
                    raise
                break
        self.dropped_bytes += len(view)

    def _relay_input(self):
        """pty -> firmware stdin, raw bytes, waiting on the firmware (back-pressure).

        Every read and write happens under `_rx_lock` together with the `_rx_held` count,
        so `rx_pending()` never sees bytes in two places or in none.  The parent holds the
        pipe's read end, so a firmware that has gone makes no EPIPE: the relay then just
        waits with a full pipe until `_end` wakes it.
        """
        stdin = self._stdin_w
        poller = select.poll()
        poller.register(self._master, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        pipe_free = select.poll()
        pipe_free.register(stdin, select.POLLOUT)
        pipe_free.register(self._wake_r, select.POLLIN)
        try:
            while True:
                events = dict(poller.poll())
                if self._wake_r in events:
                    return
                flags = events.get(self._master, 0)
                data = b""
                if flags & select.POLLIN:
                    with self._rx_lock:
                        try:
                            data = os.read(self._master, _READ_SIZE)
                        except (BlockingIOError, OSError):  # EIO: the client closed the port
                            data = b""
                        self._rx_held = len(data)
                if not data:
                    if flags & select.POLLHUP:  # no client: look again soon
                        select.select([self._wake_r], [], [], 0.05)
                    continue
                view = memoryview(data)
                while view:
                    with self._rx_lock:
                        try:
                            view = view[os.write(stdin, view):]
                        except BlockingIOError:
                            pass
                        self._rx_held = len(view)
                    if view and any(fd == self._wake_r for fd, _ in pipe_free.poll()):
                        return
        except OSError:
            return  # the pipe is closed (the pedal is being stopped)


def _unread(fd):
    """Bytes waiting to be read from the pty or pipe `fd` (FIONREAD)."""
    count = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return struct.unpack("i", count)[0]


def run(api, board=DEFAULT_BOARD, heap=None, flash=None, ca=None, log=None, portal_port=None, overlay=None,
        echo=print):
    """`tonebridge sim`: start the pedal, print `serial: …` and `portal: …`, run until
    SIGINT or SIGTERM, then stop it.

    Returns:
        0 after a signal.
    Raises:
        UsageError: bad arguments.
        SimError: the firmware did not start or stopped by itself.
    """
    heap_bytes = parse_heap(heap) if heap is not None else None
    pedal = SimulatedPedal(api, flash or default_flash_path(board), heap=heap_bytes, board=board, ca=ca,
                           log=log, portal_port=portal_port, overlay=overlay)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with pedal:
            pedal.start()
            if pedal.code_bytes is not None:  # before the two lines: a reader of those has this too
                print("sim: heap %d KB for data (the board's budget) + %d KB of firmware bytecode, which a board "
                      "keeps frozen in flash" % (pedal.data_heap // 1024, -(-pedal.code_bytes // 1024)),
                      file=sys.stderr, flush=True)
            elif pedal.frozen:
                print("sim: heap %d KB; the firmware is frozen into this micropython, as on a board"
                      % (pedal.heap // 1024), file=sys.stderr, flush=True)
            echo("serial: %s" % pedal.serial_path)
            echo("portal: %s" % pedal.portal_url)
            sys.stdout.flush()
            pedal.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0  # pragma: no cover - wait() only returns by raising
