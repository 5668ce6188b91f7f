"""The USB serial service: the link protocol (tonecore.link) on the pedal's console.

The console is shared: log lines and the REPL use it too.  While no session is open
the pedal is an ordinary MicroPython console: Ctrl-C (0x03) stops the firmware and
leaves you at the REPL, which is how `mpremote` (deploys) gets in.  A host opens a
session with a HELLO frame (which it makes sure contains no 0x03 byte); from then on
0x03 is data (`micropython.kbd_intr(-1)`), and log lines wait until the session ends.
A session ends with BYE, or after tonecore.link.SESSION_MS without a good frame.

Ctrl-C outside a session, exactly: a 0x03 in the first INTERRUPT_MS of a burst of
bytes that follows QUIET_MS of silence.  That is what a person pressing Ctrl-C, and
mpremote's "\\r\\x03", look like; the tail of a host's transfer that lost its session
does not (it keeps the line busy), so it cannot stop the pedal by accident.

`FlashStore` is the store `tonecore.link.Pedal` works on: the same model library on
flash that Wi-Fi syncs install into (pedal.library), with the same .part files, so a
push that was cut off resumes from what is on flash.
"""

import asyncio
import gc
import hashlib
import os
import sys
import time

import boardinfo
from tonecore import link
from tonecore.compat import hexlify
from tonecore.errors import IntegrityError, PedalRefused
from tonecore.formats import FormatCheck

from . import console
from .library import BYTES, ID, NAME, PLATFORM, SHA, SIZE, TONE, UPDATED, LibraryFull, TooLarge, read_json, write_json

FIRMWARE = "tonebridge-pedal 0.1"
QUIET_MS = 300
INTERRUPT_MS = 100
ENOSPC = 28

# Link settings per console kind: (max raw frame, window, receive buffer, read size,
# flush every).  A UART REPL has a 260-byte ring that drops on overflow: the host may
# only have that many bytes unread by us (less a margin).  Native USB and the
# simulator's pty hold the host back themselves.  A push is flushed to flash every
# 16 KB on a UART (1.4 s of line at 115200: what a reset can cost), less often where
# the line is fast.
LINKS = {
    "uart": (1024 + 16, 4096, 240, 1, 16 * 1024),
    "usb": (4096 + 16, 16384, 0, 1, 64 * 1024),
    "pty": (4096 + 16, 262144, 0, 4096, 256 * 1024),
}


class FlashStore:
    """The store interface of tonecore.link.Pedal over the pedal's Library."""

    def __init__(self, pedal, buf):
        self.pedal = pedal
        self.library = pedal.library
        self.buf = buf  # scratch for reading a resumed .part back (the HTTP buffer)
        self.file = None
        self.meta = None
        self.model_id = None
        self.path = None
        self.size = 0  # bytes in the .part, all of them hashed
        self.digest = None
        self.check = None

    def info(self):
        try:
            free = self.library.free_bytes()
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

    def _part_meta(self, model_id):
        return read_json(self.library.part_path(model_id) + ".json", None)

    def _matches(self, meta, size, sha):
        return (meta is not None and meta.get("source") == "usb" and meta.get("size") == size
                and meta.get("sha256") == (hexlify(sha) if sha else None))

    def stat(self, model_id, size, sha):
        offset = 0
        if self._matches(self._part_meta(model_id), size, sha):
            try:
                offset = os.stat(self.library.part_path(model_id))[6]
            except OSError:
                offset = 0
        entry = self.library.find(model_id)
        return min(offset, size or 0), entry is not None and sha is not None and entry[SHA] == sha

    def open(self, meta):
        pedal = self.pedal
        if pedal.syncing():
            raise PedalRefused("a Wi-Fi sync is running; push again when it has finished", link.E_BUSY)
        library = self.library
        model_id, size = meta["id"], meta["size"]
        limit = library.max_model_bytes
        if limit and size > limit:
            raise TooLarge("model %d is %d KB; this board stores models up to %d KB"
                           % (model_id, size // 1024, limit // 1024))
        path = library.part_path(model_id)
        sidecar = {"id": model_id, "source": "usb", "size": size, "sha256": hexlify(meta["sha256"]),
                   "name": meta.get("name"), "platform": meta.get("platform"), "tone_id": meta.get("tone_id"),
                   "size_class": meta.get("size_class"), "updated_at": meta.get("updated_at"),
                   "filename": meta.get("filename")}
        old = self._part_meta(model_id)
        resume = self._matches(old, size, meta["sha256"])
        if resume:
            try:
                os.stat(path)
            except OSError:
                resume = False
        self.file = open(path, "r+b" if resume else "w+b")
        offset = self.file.seek(0, 2) if resume else 0
        if offset > size:
            self.file.close()
            self.file = open(path, "w+b")
            offset = 0
        need = size - offset
        block = os.statvfs(library.root or "/")[0]
        free = library.free_bytes() - 16 * block
        if need > free:
            self.file.close()
            self.file = None
            library.discard(model_id)
            raise LibraryFull("not enough flash for model %d: it needs %d KB, %d KB are free"
                              % (model_id, need // 1024, max(free, 0) // 1024))
        if not resume:
            write_json(path + ".json", sidecar)
        self.meta = sidecar
        self.model_id = model_id
        self.path = path
        self.size = 0
        self.digest = hashlib.sha256()
        self.check = FormatCheck(meta.get("filename") or "model.bin")
        if offset:  # what is already on flash counts: read it back into the hash
            self.file.seek(0)
            view = memoryview(self.buf)
            while self.size < offset:
                count = self.file.readinto(view[:min(len(self.buf), offset - self.size)])
                if not count:
                    break
                self._absorb(view[:count])
            self.file.seek(self.size)
        pedal.serial_transfer = model_id
        return self.size

    def _absorb(self, data):
        self.digest.update(data)
        self.check.feed(data)
        self.size += len(data)

    def write(self, data):
        try:
            self.file.write(data)
        except OSError as exc:
            if exc.args and exc.args[0] == ENOSPC:
                self._abandon()
                raise LibraryFull("the flash filled up while writing model %d" % self.model_id)
            raise
        self._absorb(data)

    def flush(self):
        self.file.flush()

    def close(self):
        if self.file is not None:
            try:
                self.file.flush()
            finally:
                self.file.close()
                self.file = None
                self.pedal.serial_transfer = None

    def _abandon(self):
        try:
            self.close()
        except OSError:
            pass
        self.library.discard(self.model_id)

    def commit(self):
        """Check length, SHA-256 (of every byte as it went to flash, and of a resumed
        .part as it was read back) and format; then install the .part."""
        self.close()
        meta = self.meta
        total = self.size
        sha = self.digest.digest()
        try:
            on_flash = os.stat(self.path)[6]
            if total != meta["size"] or on_flash != total:
                raise IntegrityError("model %d has %d bytes on flash, not %d" % (self.model_id, on_flash, meta["size"]))
            if hexlify(sha) != meta["sha256"]:
                raise IntegrityError("model %d: SHA-256 on flash differs from the host's" % self.model_id)
        except IntegrityError:
            self.library.discard(self.model_id)  # never resume from bad bytes
            raise
        try:
            self.check.verify(total)
        except IntegrityError as exc:
            self.library.discard(self.model_id)
            raise PedalRefused(exc.message, link.E_FORMAT)
        info = dict(meta)
        info["size"] = meta.get("size_class")
        part = _Done(self.model_id, self.path, total)
        entry = self.library.install(part, info, meta["sha256"])
        console.log("usb: model %d installed: %s (%d bytes, sha256 %s)"
                    % (self.model_id, entry[NAME], total, meta["sha256"][:12]))
        return sha

    def delete(self, model_id):
        self.library.delete(model_id)
        console.log("usb: model %d deleted" % model_id)

    def activate(self, model_id):
        self.library.activate(model_id)
        console.log("usb: model %d is active" % model_id)


class _Done:
    """What Library.install needs of a finished .part."""

    def __init__(self, model_id, path, size):
        self.model_id = model_id
        self.path = path
        self.size = size


def _inflate(data):
    import deflate
    import io

    with deflate.DeflateIO(io.BytesIO(data), deflate.RAW, 9) as stream:
        return stream.read()


class Console:
    """The serial console as a byte pipe: stdin/stdout, per board."""

    def __init__(self, kind):
        # "pty": the simulator's stdin is a non-blocking pipe (see pedal.sim), so readinto
        # returns what is there; a board's stdin is read a byte at a time instead
        self.bulk = kind == "pty"
        self.stdin = sys.stdin.buffer
        self.stdout = sys.stdout.buffer
        self.reader = asyncio.StreamReader(self.stdin)
        if not self.bulk:
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
        """`kind`: the console ("uart", "usb", "pty"; default the board's SERIAL);
        `profile`: whose link settings to announce, default the same (the simulator
        behind the link emulator's UART model says "uart")."""
        self.pedal = pedal
        kind = kind or getattr(boardinfo, "SERIAL", "uart")
        max_frame, window, rx_buffer, _, flush_every = LINKS.get(profile or kind, LINKS["uart"])
        read_size = min(LINKS.get(kind, LINKS["uart"])[3], max_frame)
        hook = pedal.settings.get("on_serial_start")
        if hook:
            hook()  # the simulator makes its stdin non-blocking
        self.console = Console(kind)
        self.buf = bytearray(read_size if read_size > 1 else 256)
        try:
            import deflate  # noqa: F401  (a probe: stock ESP32 firmware has it)

            inflate = _inflate
        except ImportError:
            inflate = None
        self.store = FlashStore(pedal, pedal.http.buf)
        self.proto = link.Pedal(self.store, max_frame, window, rx_buffer, inflate, flush_every)
        self.last_byte_ms = None
        self.burst_ms = None
        self.active = False

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
                hook = self.pedal.settings.get("on_interrupt")
                if hook:
                    hook()
                raise KeyboardInterrupt
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

    async def _ticker(self):
        while True:
            await asyncio.sleep_ms(500)
            self.proto.tick(self.pedal.clock())
            if self.proto.active != self.active:
                self._session(self.proto.active)
