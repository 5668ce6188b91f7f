"""The USB serial service: the link protocol (tonecore.link) on the pedal's console.

The console is shared: log lines and the REPL use it too (docs/protocol.md §1).  While
no session is open the pedal is an ordinary MicroPython console: Ctrl-C (0x03) stops
the firmware and leaves you at the REPL, which is how `mpremote` (deploys) gets in.  A
host opens a session with a HELLO frame (which it makes sure contains no 0x03 byte);
from then on 0x03 is data (`micropython.kbd_intr(-1)`), and log lines wait until the
session ends.  A session ends with BYE, or after tonecore.link.SESSION_MS without a
good frame.

Ctrl-C outside a session, exactly: a 0x03 in the first INTERRUPT_MS of a burst of
bytes that follows QUIET_MS of silence (a board's UART driver takes any 0x03 outside a
session itself).  That is what a person pressing Ctrl-C, and mpremote's "\\r\\x03",
look like; the tail of a host's transfer that lost its session does not (it keeps the
line busy), so it cannot stop the pedal by accident.

The hand-over, both ways (tonecore.linkconsole):
- mpremote's way into the raw REPL (Ctrl-C, then "\\r\\x01") hands the console to
  the REPL at any moment, in a session too (after a killed host) or right after one:
  once the line is quiet, the session ends (a push's .part is flushed, so it resumes),
  kbd_intr is restored, the "\\r\\x01" the service read is given back to the REPL
  (`give_back`), and the firmware stops with KeyboardInterrupt; the REPL then answers
  mpremote's raw-REPL request at once.
- the host's probe ("\\x00\\r\\x01", before any frame) is answered with
  PROBE_ANSWER; at a REPL the same bytes bring the raw REPL's banner, and the host then
  starts the pedal again through the raw REPL with `resume()`.

`FlashStore` is the store the pedal's end of the link (tonecore.link) works on: the same
model library on flash that Wi-Fi syncs install into (pedal.library), through the same
`PartFile`, so a push that was cut off resumes from what is on flash, and is verified by
the core's checks (tonecore.download.Verifier) as a download is.

The link's settings come from the console kind (the board's SERIAL) through
tonecore.linkprofile; a kind it does not know is refused (UsageError), and the pedal
then runs without the link service.
"""

import asyncio
import gc
import sys
import time

import boardinfo
from tonecore import __version__, link
from tonecore.download import Verifier
from tonecore.errors import IntegrityError, PedalRefused
from tonecore.formats import FormatError
from tonecore.linkconsole import PROBE_ANSWER, PROBED, REPL_QUIET_MS, TO_REPL, ConsoleWatch, TypedInput
from tonecore.linkprofile import console_settings

from . import console
from .library import BYTES, ID, NAME, PLATFORM, SHA, SIZE, TONE, UPDATED, usb_identity

FIRMWARE = "tonebridge-pedal " + __version__
QUIET_MS = 300
INTERRUPT_MS = 100
GIVE_BACK = b"\r\x01"  # what the REPL must read after a hand-over: "enter the raw REPL", as mpremote asked

_served = None  # the Pedal the service ran for in this interpreter: resume() starts it again


class FlashStore:
    """The store interface of the link's pedal end (tonecore.link) over the pedal's Library."""

    def __init__(self, pedal, buf):
        self.pedal = pedal
        self.library = pedal.library
        self.buf = buf  # scratch for reading a resumed .part back (the HTTP buffer)
        self.part = None  # the PartFile of the push in progress
        self.verifier = None
        self.expected = None  # (size, SHA-256 hex) the host announced
        self.record = None  # what the manifest will say of it

    def info(self):
        try:  # what a model may take: the figure a push that does not fit is refused with
            free = max(self.library.room(), 0)
        except OSError:
            free = None
        return {"board": boardinfo.NAME, "free": free, "firmware": FIRMWARE}

    def model_count(self):
        return len(self.library.models)

    def model_item(self, index):
        e = self.library.models[index]
        return [e[ID], e[NAME], e[PLATFORM], e[SIZE], e[BYTES], e[SHA], e[UPDATED], e[TONE]]

    def active_model(self):
        return self.library.active

    def stat(self, model_id, size, sha):
        offset = self.library.part_offset(model_id, usb_identity(model_id, size, sha), size)
        entry = self.library.find(model_id)
        return offset, entry is not None and sha is not None and entry[SHA] == sha

    def open(self, meta):
        pedal = self.pedal
        if pedal.syncing():
            raise PedalRefused("a Wi-Fi sync is running; push again when it has finished", link.E_BUSY)
        model_id, size = meta["id"], meta["size"]
        identity = usb_identity(model_id, size, meta["sha256"])
        self.part = None
        # the link checked the file name and platform; the bytes are checked as they come
        self.verifier = Verifier(meta["filename"], meta.get("platform"))
        # the link flushes (and tells the host what is durable): flush_every 0
        self.part = self.library.open_part(model_id, identity, self.verifier, self.buf, size, 0)
        self.expected = (size, identity["sha256"])
        self.record = {"tone_id": meta.get("tone_id"), "name": meta.get("name"), "platform": meta.get("platform"),
                     "size": meta.get("size_class"), "updated_at": meta.get("updated_at"),
                     "filename": meta.get("filename")}
        pedal.serial_transfer = model_id
        return self.part.size

    def write(self, data):
        self.part.write(data)  # ENOSPC: LibraryFull, the .part deleted
        self.verifier.feed(data)

    def flush(self):
        self.part.flush()

    def close(self):
        if self.part is not None:
            try:
                self.part.close()
            finally:
                self.pedal.serial_transfer = None

    def commit(self):
        """Verify (the core's checks over every byte as it went to flash, and over a
        resumed .part as it was read back), then install the .part.

        Returns:
            the SHA-256 (32 bytes).
        """
        part, self.part = self.part, None
        part.close()
        self.pedal.serial_transfer = None
        size, sha = self.expected
        try:
            sha = self.verifier.finish(size, sha)
        except FormatError as exc:
            part.discard()
            raise PedalRefused(exc.message, link.E_FORMAT)
        except IntegrityError:
            part.discard()  # never resume from bad bytes
            raise
        entry = part.install(self.record, sha)
        console.log("usb: model %d installed: %s (%d bytes, sha256 %s)"
                    % (part.model_id, entry[NAME], size, sha[:12]))
        return entry[SHA]

    def delete(self, model_id):
        self.library.delete(model_id)
        console.log("usb: model %d deleted" % model_id)

    def activate(self, model_id):
        self.library.activate(model_id)
        console.log("usb: model %d is active" % model_id)

    def set_wifi(self, ssid, password, restart):
        """Save the network in config.json as the set-up page does (`tonebridge pedal
        wifi`); with `restart`, restart into it once the reply is out.  Returns the
        pedal's network name (its mDNS name without .local)."""
        from . import wifi

        try:
            ssid = wifi.save(self.library.root, ssid, password)  # logs the SSID, never the password
        except ValueError as exc:
            raise PedalRefused(str(exc), link.E_BAD_REQUEST)
        if restart:
            self.pedal.restart_soon("joining the Wi-Fi network %s" % ssid)
        return wifi.device_name()


def _inflate(data, out):
    """Raw deflate (wbits 9) undone into the buffer `out`, as much as fits; returns how
    many bytes (the link refuses a frame that fills `out`: it inflates past what it may
    hold).  Nothing of the output's size is allocated."""
    import deflate
    import io

    with deflate.DeflateIO(io.BytesIO(data), deflate.RAW, 9) as stream:
        return stream.readinto(out)


class Console:
    """The serial console as a byte pipe: stdin/stdout, per board."""

    def __init__(self, kind):
        # "pty": the simulator's stdin is a non-blocking pipe (see simboard.boot), so readinto
        # returns what is there; a board's stdin is read a byte at a time instead
        self.bulk = kind == "pty"
        self.stdin = sys.stdin.buffer
        self.stdout = sys.stdout.buffer
        self.reader = asyncio.StreamReader(self.stdin)
        import select

        self.poller = select.poll()
        self.poller.register(self.stdin, select.POLLIN)

    async def readinto(self, buf):
        if self.bulk:
            return await self.reader.readinto(buf)
        # A board's stdin blocks until it has filled the buffer: wait for one byte,
        # then take only what is already there, a byte at a time.
        view = memoryview(buf)
        count = await self.reader.readinto(view[:1])
        while count < len(buf) and self.poller.poll(0):
            if not self.stdin.readinto(view[count:count + 1]):
                break
            count += 1
        return count

    def quiet(self, ms):
        """True when no byte arrives within `ms` (blocks: only after mpremote's sequence)."""
        return not self.poller.poll(ms)

    def write(self, data):
        view = memoryview(data)
        while view:
            written = self.stdout.write(view)
            if written is None:  # a non-blocking console that is full: try again shortly
                time.sleep_ms(1)
                continue
            view = view[written:]


class SerialService:
    def __init__(self, pedal, kind=None, profile=None):
        """`kind`: the console (a tonecore.linkprofile kind; default the board's SERIAL);
        `profile`: whose link settings to announce, default the same (the simulator
        behind the link emulator's UART model says "uart").

        Raises:
            UsageError: a kind no link profile covers (before the console is touched).
        """
        self.pedal = pedal
        kind = kind or boardinfo.SERIAL
        max_frame, window, rx_buffer, read_size, flush_every = console_settings(kind, profile)
        hook = pedal.settings.get("on_serial_start")
        if hook:
            hook()  # the simulator makes its stdin non-blocking
        self.console = Console(kind)
        self.buf = bytearray(read_size if read_size > 1 else 256)
        try:
            import deflate  # (a probe: stock ESP32 firmware has it)

            inflate = _inflate if hasattr(deflate, "DeflateIO") else None
        except ImportError:
            inflate = None
        self.store = FlashStore(pedal, pedal.http.buf)
        self.proto = link.PedalEnd(self.store, max_frame, window, rx_buffer, inflate, flush_every)
        self.watch = ConsoleWatch()
        self.last_byte_ms = None
        self.burst_ms = None
        self.active = False
        global _served
        _served = pedal

    def _interrupt(self, now, count):
        """True when bytes just read hold a Ctrl-C meant for the REPL."""
        if self.last_byte_ms is None or now - self.last_byte_ms >= QUIET_MS:
            self.burst_ms = now
        self.last_byte_ms = now
        if self.proto.active or now - self.burst_ms > INTERRUPT_MS:
            return False
        return self.buf.find(b"\x03", 0, count) >= 0

    def _session(self, active):
        if active == self.active:
            return
        self.active = active
        try:
            import micropython

            micropython.kbd_intr(-1 if active else 3)
        except (ImportError, AttributeError):
            pass
        console.hold(active)
        if not active:
            console.log("usb: session closed (%d frames, %d bytes of data, %d damaged frames)"
                        % (self.proto.stats["frames"], self.proto.stats["data"], self.proto.decoder.errors()))

    async def run(self):
        asyncio.create_task(self._ticker())
        clock = self.pedal.clock
        proto = self.proto
        console.log("usb: link ready (frames up to %d bytes, window %d, receive buffer %s)"
                    % (proto.max_frame, proto.window, proto.rx_buffer or "unlimited"))
        whole = self.buf
        one = memoryview(whole)[:1]
        while True:
            # Outside a session, a byte at a time: what follows a Ctrl-C is the REPL's
            # (mpremote sends "\r\x03" and "\r\x01" together) and must stay unread.
            count = await self.console.readinto(whole if proto.active else one)
            if not count:
                await asyncio.sleep_ms(50)  # end of input (the simulator's host went away)
                continue
            now = clock()
            if self._interrupt(now, count):
                self._session(False)
                self._stop()
            found = self.watch.scan(self.buf, count)
            try:
                out = self.proto.receive(self.buf, now, count)
            except Exception as exc:  # a bug or no memory: the console must keep serving
                out = None
                gc.collect()
                console.log("usb: dropped %d bytes: %r" % (count, exc))
            if self.proto.active and not self.active:
                self._session(True)  # log lines wait from now on
            if out:
                self.console.write(out)
            if self.active and not self.proto.active:
                self._session(False)  # after the BYE reply
            if found & PROBED:
                self.console.write(PROBE_ANSWER)  # after any frame: never inside one
            if found & TO_REPL and self.console.quiet(REPL_QUIET_MS):
                self._to_repl()

    def _to_repl(self):
        """mpremote asked for the raw REPL: end the session (an open push's .part is
        flushed and closed: it resumes), give the REPL back the "\\r\\x01" read here, stop."""
        console.log("usb: the REPL takes the console (mpremote)")
        self.proto.end_session()
        self._session(False)
        hook = self.pedal.settings.get("give_back")
        if hook:
            hook(GIVE_BACK)  # the simulator: into its stdin
        else:
            try:
                import os

                TypedInput(GIVE_BACK, os.dupterm)  # a board: its REPL reads dupterm after its UART
            except (ImportError, AttributeError):
                console.log("usb: no os.dupterm here: mpremote must ask for the raw REPL again")
        self._stop()

    def _stop(self):
        """Leave for the REPL: KeyboardInterrupt, as a Ctrl-C does (the simulator's hook
        sets its REPL up first)."""
        hook = self.pedal.settings.get("on_interrupt")
        if hook:
            hook()
        raise KeyboardInterrupt

    async def _ticker(self):
        while True:
            await asyncio.sleep_ms(500)
            self.proto.tick(self.pedal.clock())
            if self.proto.active != self.active:
                self._session(self.proto.active)


def resume():
    """Start the pedal again from the REPL: what `tonebridge pedal` runs through the raw
    REPL when it finds the pedal there (docs/protocol.md §1).  Runs until the pedal
    stops (KeyboardInterrupt after the next Ctrl-C or hand-over, as at boot).

    After a Ctrl-C or a hand-over the pedal's program has ended, but this interpreter
    keeps its modules, its mounted flash and the settings it ran with: the pedal
    starts again with those (`main.start`), on a board as in the simulator, with a new
    asyncio loop (the stopped one's tasks are dropped) and the old portal's sockets
    closed.  In a fresh interpreter (a board after a soft reset: mpremote's default)
    nothing ran yet: `main.boot()`, what main.py runs at power-on.
    """
    global _served
    from . import main

    pedal, _served = _served, None
    asyncio.new_event_loop()
    try:
        asyncio.core.cur_task = None  # (it still holds the stopped service's task)
    except AttributeError:
        pass
    if pedal is None:
        main.boot()
        return
    settings = pedal.settings
    _close_sockets(pedal)
    pedal = None
    gc.collect()
    main.start(settings)


def _close_sockets(pedal):
    """Close the stopped pedal's portal sockets, so that the new one can listen."""
    web = getattr(pedal, "web", None)
    socks = [getattr(web, "sock", None)]
    socks += [getattr(getattr(conn, "stream", None), "s", None) for conn in getattr(web, "connections", ())]
    for sock in socks:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
