"""The host's end of the USB serial link: talk to a pedal over a serial port.

    with PedalLink.open_port("/dev/ttyUSB0") as pedal:     # probe (a REPL: start the pedal), HELLO
        pedal.info                                        # board, free flash, limits
        pedal.models()                                    # [PedalModel], active id
        pedal.push("model.nam", model_id=…, progress=…)   # resumable, verified on the pedal
        pedal.activate(model_id); pedal.delete(model_id)
                                                          # BYE on leaving
Everything the link decides (requests and their retries, sessions, credit, rewinds,
compression, re-PUT) is tonecore.linkhost.HostEnd, bytes in and bytes out; this module
is its select() loop on the port's descriptor, plus the file (size, SHA-256, reads),
zlib and progress.  Before the first frame, `start_service` probes what answers on the
console (tonebridge.link.console: the service, or a MicroPython REPL, where it starts
the pedal).  docs/protocol.md is the specification.
"""

import os
import select
import time
import zlib

from tonecore import link
from tonecore.errors import LinkBroken, LinkError, UsageError
from tonecore.linkhost import RETRIES, RTO_MS, HostEnd

from tonebridge.fileio import file_sha256

DEFAULT_BAUD = 115200
RTO_S = RTO_MS / 1000.0
POLL_S = 0.05  # the loop wakes at least this often for the link's timers
READ_BYTES = 65536
WRITE_BYTES = 16384  # offered to one write (a port takes a few KB at a time)


class PedalModel:
    """A model installed on the pedal (a LIST item)."""

    FIELDS = ("id", "name", "platform", "size", "bytes", "sha256", "updated_at", "tone_id")

    def __init__(self, item, active):
        values = list(item) + [None] * (len(self.FIELDS) - len(item))
        for name, value in zip(self.FIELDS, values):
            setattr(self, name, value)
        if isinstance(self.sha256, bytes):
            self.sha256 = self.sha256.hex()
        self.active = self.id == active

    def to_json(self):
        data = {name: getattr(self, name) for name in self.FIELDS}
        data["active"] = self.active
        return data


def deflate(data):
    """Raw deflate with a 2^9 window: the pedal inflates with 512 bytes."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -9)
    return packer.compress(data) + packer.flush()


class PedalLink:
    """A session with a pedal over an open port (a pyserial Serial, or anything with
    fileno()).  Not thread-safe: one user at a time, like the port itself.

    `info` is the pedal's HELLO (None without a session); `transfer` the last push's
    tonecore.linkhost.Transfer (its counters, also after a failure); `compress` says
    whether DATA may go deflated."""

    def __init__(self, port, rto_s=RTO_S, retries=RETRIES, compress=True, clock=time.monotonic):
        self.port = port
        self.fd = port.fileno()
        self.clock = clock
        self.end = HostEnd(rto_ms=int(rto_s * 1000), retries=retries, compress=deflate if compress else None)
        os.set_blocking(self.fd, False)

    @property
    def info(self):
        return self.end.info

    @property
    def transfer(self):
        return self.end.transfer

    @property
    def compress(self):
        return self.end.compress is not None

    @compress.setter
    def compress(self, value):
        self.end.compress = deflate if value else None

    # -- opening and closing -------------------------------------------------------

    @classmethod
    def open_port(cls, port, baud=DEFAULT_BAUD, on_repl=None, **kw):
        """Open `port` ("auto" finds one), make sure the link service answers
        (`start_service`), HELLO; the link owns the port from then on."""
        from tonebridge.link import ports

        serial = ports.open_port(ports.resolve_port(port), baud)
        try:
            pedal = cls(serial, **kw)
            pedal.start_service(on_repl)
            pedal.hello()
        except BaseException:
            serial.close()
            raise
        return pedal

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        # BYE unless the link itself broke (a refusal by the pedal leaves the link fine)
        broken = isinstance(value, (OSError, LinkBroken))
        self.close(bye=not broken)

    def close(self, bye=True):
        try:
            if bye and self.info is not None:
                try:
                    self.end.bye(self._now())
                    self._run()
                except (LinkError, OSError):
                    pass
        finally:
            self.port.close()

    # -- operations ----------------------------------------------------------------

    def start_service(self, on_repl=None):
        """Before any frame: probe the console; at a MicroPython REPL, start the pedal
        there (tonebridge.link.console), calling `on_repl()` first.

        Returns:
            "service", "started" (it was at the REPL), or None (nothing answered the
            probe: an older firmware, or a busy pedal; the HELLO tries on its own).
        Raises:
            FirmwareMissing: a MicroPython board without the tonebridge firmware.
            LinkBroken: the firmware did not start, or the port failed.
        """
        from tonebridge.link.console import ServiceStart

        start = ServiceStart(self._now())
        told = False
        while not start.done():
            data = start.to_write()
            readable, writable, _ = select.select([self.fd], [self.fd] if data else [], [], POLL_S)
            if writable:
                start.written(self._write(data))
            if readable:
                start.receive(self._read(), self._now())
            if start.at_repl and not told:
                told = True
                if on_repl is not None:
                    on_repl()
            start.tick(self._now())
        return start.result()

    def hello(self):
        """Open a session; returns `info`."""
        self.end.open_session(self._now())
        return self._run()

    def request(self, kind, fields=None, retries=None):
        """Send a control request and return the pedal's reply (a dict).  PedalRefused
        for an ERROR reply (with its .code), LinkBroken when the pedal does not answer."""
        self.end.request(kind, fields, self._now(), retries)
        return self._run()

    def models(self):
        """([PedalModel], active id) of everything installed."""
        self.end.list_models(self._now())
        items, active = self._run()
        return [PedalModel(item, active) for item in items], active

    def stat(self, model_id, size=None, sha256=None):
        reply = self.request(link.STAT, {link.K_ID: model_id, link.K_SIZE: size, link.K_SHA: sha256})
        return reply.get(link.K_OFFSET) or 0, bool(reply.get(link.K_INSTALLED))

    def delete(self, model_id):
        self.request(link.DELETE, {link.K_ID: model_id})

    def activate(self, model_id):
        self.request(link.ACTIVATE, {link.K_ID: model_id})

    def push(self, path, model_id, name=None, platform=None, tone_id=None, size_class=None, updated_at=None,
             progress=None, sha256=None):
        """Send the file at `path` as model `model_id`; the pedal verifies and installs it.

        Resumes where the pedal's .part of the same file ends (also after the pedal
        restarted mid-way).  `progress(done, total)` is called as ACKs arrive.
        Returns a tonecore.linkhost.PushResult.
        """
        try:
            size = os.path.getsize(path)
            handle = open(path, "rb")
        except OSError as error:
            raise UsageError("cannot read %s: %s" % (path, error.strerror or error)) from None
        with handle:
            if sha256 is None:
                sha256 = bytes.fromhex(file_sha256(path))
            filename = os.path.basename(path)
            fields = {link.K_ID: model_id, link.K_SIZE: size, link.K_SHA: sha256, link.K_NAME: name or filename,
                      link.K_PLATFORM: platform, link.K_TONE: tone_id, link.K_CLASS: size_class,
                      link.K_UPDATED: updated_at, link.K_FILENAME: filename}

            def read(offset, count):
                handle.seek(offset)
                return handle.read(count)

            self.end.push({key: value for key, value in fields.items() if value is not None}, read, self._now())
            return self._run(progress)

    # -- moving bytes --------------------------------------------------------------

    def _run(self, progress=None):
        """Move bytes until the link's operation is over: write what it has to send,
        feed it what arrives, let its timers run.  Its result, or its error."""
        end = self.end
        reported = None
        try:
            while not end.done():
                data = end.to_write(WRITE_BYTES)
                readable, writable, _ = select.select([self.fd], [self.fd] if data else [], [], POLL_S)
                if writable:
                    end.written(self._write(data))
                if readable:
                    end.receive(self._read(), self._now())
                end.tick(self._now())
                transfer = end.transfer
                if progress is not None and transfer is not None and transfer.acked != reported:
                    reported = transfer.acked
                    progress(reported, transfer.size)
        except BaseException:
            end.abort()  # the port failed, or Ctrl-C: the next request starts clean
            raise
        return end.result()

    def _now(self):
        return self.clock() * 1000.0

    def _write(self, data):
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as error:
            raise LinkBroken("the serial port failed: %s (unplugged?)" % (error.strerror or error)) from None

    def _read(self):
        try:
            data = os.read(self.fd, READ_BYTES)
        except BlockingIOError:
            return b""
        except OSError as error:
            raise LinkBroken("the serial port failed: %s (unplugged?)" % (error.strerror or error)) from None
        if not data:
            raise LinkBroken("the serial port was closed (unplugged?)")
        return data
