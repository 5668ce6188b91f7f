"""The USB serial link protocol, sans-IO: the pedal's end, and the words both ends speak.

`PedalEnd` is the pedal's end: feed it the bytes read from the serial console and write
back what it returns; it keeps the session, the transfer in progress and the flow
control, and calls a *store* (the pedal's model library on flash) to do the work.  The
host's end is `tonecore.linkhost.HostEnd`, bytes in and bytes out in the same way.  The
pedal's serial service (firmware/pedal/serial.py) and the host's serial session
(host/tonebridge/link/session.py) only move bytes.  docs/protocol.md is the
specification.

Frames (tonecore.frame) of four kinds:

    CONTROL  'C'  a CBOR map with integer keys; key 0 is the message type.  The host
                  sends requests; the pedal answers each with the same seq.
    DATA     'D'  offset (u32 LE) + bytes of the file being pushed
    DEFLATE  'Z'  offset (u32 LE) + the same bytes, raw-deflated (wbits 9)
    ACK      'A'  pedal -> host: anchor seq (u16), pulled (u32), next (u32),
                  durable (u32), flags (u8)

Flow control.  The pedal grants credit in wire bytes: an ACK says "I have read every
byte up to the end of frame <anchor> and <pulled> bytes after it".  The host remembers
where each frame it sent ended, so it knows how many of its bytes the pedal has not read
yet, and keeps that under the pedal's `rx_buffer` (260 bytes on a UART REPL).  Besides,
the data the pedal has not acknowledged stays under `window`.  `next` is a cumulative
ACK (all data before it has arrived in order), `durable` how much of it is on flash.
"""

import gc
import struct

from . import cbor
from .compat import const
from .errors import IntegrityError, PedalRefused, ProtocolError, ToneError
from .formats import FormatError, check_kind
from .frame import Decoder, encode

VERSION = const(1)

# frame kinds
CONTROL = const(0x43)
DATA = const(0x44)
DEFLATE = const(0x5A)
ACK = const(0x41)

# control message types (key 0)
HELLO = const(1)
LIST = const(2)
STAT = const(3)
PUT = const(4)
COMMIT = const(5)
DELETE = const(6)
ACTIVATE = const(7)
BYE = const(8)
WIFI = const(12)  # save the Wi-Fi network the pedal joins (config.json), restart if asked
ERROR = const(15)

# control message keys
K_TYPE = const(0)
K_VERSION = const(1)
K_NONCE = const(2)
K_BOARD = const(3)
K_FREE = const(4)
K_MAX_FRAME = const(5)
K_WINDOW = const(6)
K_RX_BUFFER = const(7)
K_DEFLATE = const(8)
K_FIRMWARE = const(9)
K_START = const(10)
K_MODELS = const(11)
K_TOTAL = const(12)
K_ACTIVE = const(13)
K_LIMIT = const(14)
K_ID = const(20)
K_SIZE = const(21)
K_SHA = const(22)
K_NAME = const(23)
K_PLATFORM = const(24)
K_TONE = const(25)
K_CLASS = const(26)
K_UPDATED = const(27)
K_FILENAME = const(28)
K_OFFSET = const(29)
K_INSTALLED = const(30)
K_CODE = const(40)
K_MESSAGE = const(41)
K_SSID = const(50)
K_PASSWORD = const(51)
K_RESTART = const(52)
K_HOSTNAME = const(53)

# ERROR codes
E_BAD_REQUEST = const(1)  # malformed or unknown message
E_VERSION = const(2)  # protocol version not spoken here
E_NO_SPACE = const(3)  # not enough flash
E_TOO_LARGE = const(4)  # larger than the board stores
E_NOT_FOUND = const(5)  # no such model
E_NO_TRANSFER = const(6)  # DATA or COMMIT without a PUT
E_INTEGRITY = const(7)  # length or SHA-256 differ at COMMIT
E_FORMAT = const(8)  # not a model file of its kind
E_STORAGE = const(9)  # flash error
E_BUSY = const(10)  # a Wi-Fi sync is writing the library
E_NO_SESSION = const(11)  # a request before HELLO

# ACK flags
F_GAP = const(1)  # a DATA frame arrived past `next`: something was lost, send again from `next`
F_NO_TRANSFER = const(2)  # DATA with no transfer open (the pedal restarted): PUT again

ACK_FORMAT = "<HIIIB"
DATA_HEADER = const(4)  # the offset in front of a DATA payload
CREDIT_EVERY = const(64)  # with a small rx_buffer, an ACK after this many bytes pulled
SESSION_MS = const(5000)  # a session with no good frame for this long is over
FLUSH_EVERY = const(64 * 1024)  # by default, received data is made durable this often
LIST_BYTES = const(1024)  # a LIST reply stays this small: little heap, and survives a noisy line
CONTROL_MAX = const(512)  # the longest control request the pedal decodes (a PUT is ~200)
MAX_NAME = const(64)  # characters in a PUT's name, platform, size class, date
MAX_FILENAME = const(128)  # characters in a PUT's file name
MAX_ID = const(0x7FFFFFFF)  # model and tone ids
MAX_SIZE = const(0xFFFFFFFF)  # a file's bytes (DATA offsets are u32); the board's MAX_MODEL_BYTES is the store's


def control(seq, kind, fields=None):
    """The wire bytes of a CONTROL frame of message type `kind` with `fields` {key: value}."""
    message = {K_TYPE: kind}
    if fields:
        for key in fields:
            message[key] = fields[key]
    return encode(CONTROL, seq, cbor.dumps(message))


def parse_control(payload):
    """The CBOR map of a CONTROL payload; ProtocolError when it is not one."""
    message = cbor.loads(payload)
    if type(message) is not dict or type(message.get(K_TYPE)) is not int:
        raise ProtocolError("a control message must be a map with a type")
    return message


def data_frame(seq, offset, payload, kind=DATA):
    """The wire bytes of a DATA (or DEFLATE) frame: `payload` at file `offset`."""
    return encode(kind, seq, payload, struct.pack("<I", offset))


def parse_ack(payload):
    """(anchor, pulled, next, durable, flags) of an ACK payload."""
    if len(payload) != struct.calcsize(ACK_FORMAT):
        raise ProtocolError("an ACK has %d bytes" % len(payload))
    return struct.unpack(ACK_FORMAT, payload)


def seq_after(a, b):
    """True when u16 sequence number `a` comes after `b` (modulo 2**16)."""
    return 0 < ((a - b) & 0xFFFF) < 0x8000


def _field(message, key, kind, required=True, least=0, most=None):
    """message[key] when it is a `kind` (an int from `least` to `most`); None when it is
    absent and not `required`; else PedalRefused E_BAD_REQUEST."""
    value = message.get(key)
    if value is None and not required:
        return None
    if type(value) is not kind or (kind is int and (value < least or (most is not None and value > most))):
        raise PedalRefused("field %d is missing or not a %s%s" % (
            key, kind.__name__, " from %d to %d" % (least, most) if kind is int and most is not None else ""),
            E_BAD_REQUEST)
    return value


def _text(message, key, most, required=True, choices=None):
    """message[key] when it is a str of 1 to `most` characters without control
    characters (and one of `choices`, when given); None when absent and not required;
    else PedalRefused E_BAD_REQUEST."""
    value = message.get(key)
    if value is None and not required:
        return None
    if type(value) is not str or not 0 < len(value) <= most:
        raise PedalRefused("field %d is missing or not a text of 1 to %d characters" % (key, most), E_BAD_REQUEST)
    for char in value:
        if char < " " or char == "\x7f":
            raise PedalRefused("field %d has a control character" % key, E_BAD_REQUEST)
    if choices is not None and value not in choices:
        raise PedalRefused("field %d: %r is none of %s" % (key, value, ", ".join(choices)), E_BAD_REQUEST)
    return value


def _size_class(message):
    if message.get(K_CLASS) is None:
        return None
    from .records import SIZES  # (here: the pedal has it loaded already; a test's heap need not)

    return _text(message, K_CLASS, MAX_NAME, True, SIZES)


def wifi_problem(ssid, password):
    """Why `ssid` and `password` cannot be a Wi-Fi network's, or None: the pedal's own
    rules (firmware/pedal/wifi.py save): a name of 1 to 32 bytes (surrounding spaces
    are dropped), a password of none or 8 to 63 characters, no control characters."""
    if type(ssid) is not str or not ssid.strip() or len(ssid.strip().encode()) > 32:
        return "a Wi-Fi network's name (SSID) is 1 to 32 bytes"
    if type(password) is not str or (password and not 8 <= len(password) <= 63):
        return "a Wi-Fi password is 8 to 63 characters (or none for an open network)"
    for char in ssid + password:
        if char < " " or char == "\x7f":
            return "the Wi-Fi name or password has a control character"
    return None


class PedalEnd:
    """The pedal's end of the link.

    Args:
        store: the model library (see `firmware/pedal/serial.py` for the interface:
            info, model_count, model_item, active_model, stat, open, write, flush, commit, close, delete, activate;
            set_wifi where the pedal has Wi-Fi).
        max_frame: the largest raw frame accepted (its buffer is allocated now).
        window: the most unacknowledged DATA bytes the host may have outstanding.
        rx_buffer: the console's receive buffer in bytes (260 on an ESP32 UART REPL), or
            0 when the link has flow control of its own (native USB, a pty).
        inflate: a function(data, out) that undoes raw deflate into the buffer `out` (a
            memoryview) and returns how many bytes it wrote, never more than fit (when
            `out` is full, the frame inflates past what it may hold and is refused), or
            None (no DEFLATE).  `out` is one buffer of max_frame + 1 bytes, allocated at
            HELLO and kept for the session (no allocation per frame: a fragmented heap
            cannot make inflating fail); when it cannot be had, the session goes without
            DEFLATE.
        flush_every: received data is made durable (store.flush) at least this often.

    `receive(data, now_ms)` returns the bytes to send back.  `active` is True while a
    session is open (the console must then pass 0x03 through as data).  `stats` counts
    good frames, data bytes written and gaps seen (the console logs them when a session
    ends).
    """

    def __init__(self, store, max_frame=4096 + 16, window=8192, rx_buffer=0, inflate=None, flush_every=FLUSH_EVERY):
        self.store = store
        self.flush_every = flush_every
        self.decoder = Decoder(max_frame)
        self.max_frame = max_frame
        self.window = window
        self.rx_buffer = rx_buffer
        self.inflate = inflate
        self.inflated = None  # the buffer DEFLATE frames inflate into, while a session is open
        self.active = False
        self.last_frame_ms = None
        self.anchor = 0
        self.out = None  # what the receive() in progress answers (allocated when it answers)
        self.last_request = None  # (seq, reply bytes): a repeated request gets the same reply
        self.transfer = None  # [model id, size, next offset, durable offset]
        self.gap = False
        self.acked_next = self.acked_durable = 0  # what the last ACK said
        self.ack_anchor = self.ack_pulled = None
        self.failure = None  # (model id, exception) of a write that failed mid-transfer
        self.stats = {"frames": 0, "data": 0, "gaps": 0}

    # -- bytes in, bytes out ----------------------------------------------------

    def receive(self, data, now_ms, end=None):
        """Handle the bytes `data[:end]` read from the console; returns the bytes to write
        back (b"" when there is nothing to say)."""
        self.out = None
        for kind, seq, payload in self.decoder.feed(data, end):
            self.anchor = seq
            self.last_frame_ms = now_ms
            self.stats["frames"] += 1
            if kind == CONTROL:
                self._control(seq, payload)
            elif kind == DATA or kind == DEFLATE:
                self._data(kind, payload)
                if self._ack_due():
                    self._ack()
            elif kind == ACK:
                pass  # our own kind echoed back (a loopback): ignore
        if self.active and self.rx_buffer:  # credit: a frame ended, or CREDIT_EVERY more bytes read
            if self.anchor != self.ack_anchor or self.decoder.pulled - self.ack_pulled >= CREDIT_EVERY:
                self._ack()
        out = self.out
        self.out = None  # not held between calls
        return out or b""

    def tick(self, now_ms):
        """Time passes: a session with no good frame for SESSION_MS ends."""
        if self.active and now_ms - self.last_frame_ms >= SESSION_MS:
            self.end_session()

    def end_session(self):
        """Close the session (silence, BYE, a new HELLO): the transfer's .part is flushed."""
        self._close_transfer()
        self.active = False
        self.last_request = None
        self.inflated = None
        self.decoder.reset()

    def _ack_due(self):
        """After a DATA frame: with a small receive buffer always (it is credit);
        otherwise once a quarter window has arrived, at the end, or on news."""
        transfer = self.transfer
        if self.rx_buffer or transfer is None or self.gap:
            return True
        return (transfer[2] - self.acked_next >= self.window // 4 or transfer[2] == transfer[1]
                or transfer[3] != self.acked_durable)

    def _ack(self):
        transfer = self.transfer
        flags = 0
        if transfer is None:
            nxt = durable = 0
            flags |= F_NO_TRANSFER
        else:
            nxt, durable = transfer[2], transfer[3]
        if self.gap:
            flags |= F_GAP
            self.gap = False
        pulled = self.decoder.pulled
        self.acked_next, self.acked_durable = nxt, durable
        self.ack_anchor, self.ack_pulled = self.anchor, pulled
        self._emit(encode(ACK, self.anchor, struct.pack(ACK_FORMAT, self.anchor, pulled, nxt, durable, flags)))

    def _emit(self, wire):
        """Add `wire` (a bytearray no one else holds) to what receive() returns."""
        if self.out is None:
            self.out = wire
        else:
            self.out += wire

    # -- DATA -------------------------------------------------------------------

    def _data(self, kind, payload):
        transfer = self.transfer
        if not self.active or transfer is None or len(payload) < DATA_HEADER:
            return
        offset = payload[0] | payload[1] << 8 | payload[2] << 16 | payload[3] << 24
        if offset != transfer[2]:
            if offset > transfer[2]:
                self.gap = True  # something before this was lost
                self.stats["gaps"] += 1
            return  # (one before it: a duplicate)
        body = payload[DATA_HEADER:]
        if kind == DEFLATE:
            if self.inflated is None:
                return
            # no more than the file's announced size, nor than a DATA frame holds: a frame
            # that inflates past that is refused, never inflated whole
            limit = min(transfer[1] - transfer[2], self.max_frame)
            try:
                count = self.inflate(body, self.inflated[:limit + 1])
            except Exception:  # damaged deflate data slipped past the CRC: ask again
                self.gap = True
                return
            body = self.inflated[:count]
            if count > limit:
                self.failure = (transfer[0], PedalRefused(
                    "a DEFLATE frame at byte %d inflates past %d bytes" % (offset, limit), E_BAD_REQUEST))
                self._close_transfer()  # the host hears at its next PUT
                return
        if transfer[2] + len(body) > transfer[1]:
            return  # beyond the announced size: never written
        try:
            self.store.write(body)
            transfer[2] += len(body)
            self.stats["data"] += len(body)
            if transfer[2] - transfer[3] >= self.flush_every:
                self._flush()
        except Exception as exc:  # the flash filled up, or failed: the host hears at its next PUT
            self.failure = (transfer[0], exc)
            self._close_transfer()

    def _flush(self):
        transfer = self.transfer
        self.store.flush()
        transfer[3] = transfer[2]

    def _close_transfer(self):
        if self.transfer is not None:
            try:
                self.store.close()  # the .part stays, flushed, for a resume
            except Exception:
                pass
            self.transfer = None

    # -- CONTROL ----------------------------------------------------------------

    def _control(self, seq, payload):
        last = self.last_request
        if last is not None and last[0] == seq and self.active:
            self._emit(bytearray(last[1]))  # the host did not get our reply: the same again
            return
        message = None
        try:
            if len(payload) > CONTROL_MAX:  # decoded CBOR can be ~40x its size: bound it
                raise PedalRefused("a control message of %d bytes is too long" % len(payload), E_BAD_REQUEST)
            message = parse_control(payload)
            kind = message[K_TYPE]
            if kind == HELLO:
                reply = self._hello(message)
            elif not self.active:
                raise PedalRefused("HELLO first", E_NO_SESSION)
            else:
                reply = self._request(kind, message)
            reply[K_TYPE] = kind
        except ProtocolError as exc:  # not CBOR, not a map: a request we cannot read
            reply = {K_TYPE: ERROR, K_CODE: E_BAD_REQUEST, K_MESSAGE: exc.message}
        except PedalRefused as exc:
            reply = {K_TYPE: ERROR, K_CODE: exc.code or E_STORAGE, K_MESSAGE: exc.message}
        except ToneError as exc:  # the store's own errors: library full, bad format...
            reply = {K_TYPE: ERROR, K_CODE: _code_of(exc), K_MESSAGE: exc.message}
        except OSError as exc:
            reply = {K_TYPE: ERROR, K_CODE: E_STORAGE, K_MESSAGE: "flash error: %s" % (exc,)}
        except MemoryError:
            reply = None
            if message is not None and message.get(K_TYPE) in (HELLO, LIST, STAT):  # read-only: again
                gc.collect()
                try:
                    reply = self._request(message[K_TYPE], message) if message[K_TYPE] != HELLO else self._hello(message)
                    reply[K_TYPE] = message[K_TYPE]
                except Exception:
                    reply = None
        wire = None
        if reply is not None:
            try:
                wire = encode(CONTROL, seq, cbor.dumps(reply))
            except MemoryError:
                wire = None
        if wire is None:  # the pedal is short of memory: say so (small); the host may retry
            reply = {K_TYPE: ERROR, K_CODE: E_BUSY, K_MESSAGE: "the pedal is short of memory; try again"}
            wire = encode(CONTROL, seq, cbor.dumps(reply))
        self.last_request = (seq, wire)
        self._emit(bytearray(wire))  # (a copy: the cached reply must not grow)

    def _hello(self, message):
        version = message.get(K_VERSION)
        if version != VERSION:
            raise PedalRefused("the pedal speaks protocol %d, not %s" % (VERSION, version), E_VERSION)
        self.end_session()
        self.active = True
        if self.inflate is not None:
            try:
                self.inflated = memoryview(bytearray(self.max_frame + 1))
            except MemoryError:  # (this session then goes without DEFLATE)
                self.inflated = None
        info = self.store.info()
        return {
            K_VERSION: VERSION, K_NONCE: message.get(K_NONCE), K_BOARD: info.get("board"),
            K_FREE: info.get("free"), K_FIRMWARE: info.get("firmware"), K_MAX_FRAME: self.max_frame,
            K_WINDOW: self.window, K_RX_BUFFER: self.rx_buffer, K_DEFLATE: self.inflated is not None,
        }

    def _request(self, kind, message):
        store = self.store
        if kind == LIST:
            return self._list(_field(message, K_START, int, False) or 0, _field(message, K_LIMIT, int, False))
        if kind == STAT:
            model_id = _field(message, K_ID, int)
            offset, installed = store.stat(model_id, message.get(K_SIZE), message.get(K_SHA))
            return {K_ID: model_id, K_OFFSET: offset, K_INSTALLED: installed}
        if kind == PUT:
            return self._put(message)
        if kind == COMMIT:
            return self._commit(_field(message, K_ID, int))
        if kind == DELETE:
            model_id = _field(message, K_ID, int)
            if self.transfer is not None and self.transfer[0] == model_id:
                self._close_transfer()
            store.delete(model_id)
            return {K_ID: model_id}
        if kind == ACTIVATE:
            model_id = _field(message, K_ID, int)
            store.activate(model_id)
            return {K_ID: model_id}
        if kind == BYE:
            self.end_session()
            return {}
        if kind == WIFI:
            return self._wifi(message)
        raise PedalRefused("unknown message type %d" % kind, E_BAD_REQUEST)

    def _list(self, start, limit=None):
        """Installed models from `start`, as many as fit in one frame (and `limit`)."""
        store = self.store
        total = store.model_count()
        room = min(self.max_frame, LIST_BYTES) - 64
        used = 0
        items = []
        end = total if not limit else min(total, start + limit)
        for at in range(start, end):
            item = store.model_item(at)  # one at a time: the list is never copied whole
            used += len(cbor.dumps(item))
            if used > room and items:
                break
            items.append(item)
        return {K_START: start, K_TOTAL: total, K_ACTIVE: store.active_model(), K_MODELS: items}

    def _put(self, message):
        """Open a transfer; every field is checked first (E_BAD_REQUEST: a wrong type or
        length; E_FORMAT: a file name or platform of no kind a model can be)."""
        model_id = _field(message, K_ID, int, least=1, most=MAX_ID)
        size = _field(message, K_SIZE, int, least=1, most=MAX_SIZE)
        sha = _field(message, K_SHA, bytes)
        if len(sha) != 32:
            raise PedalRefused("sha256 must be 32 bytes", E_BAD_REQUEST)
        filename = _text(message, K_FILENAME, MAX_FILENAME)
        if "/" in filename or "\\" in filename:
            raise PedalRefused("the file name %r has a path in it" % filename, E_BAD_REQUEST)
        platform = _text(message, K_PLATFORM, MAX_NAME, False)
        try:
            check_kind(filename, platform)  # the file's contents are checked at COMMIT
        except FormatError as exc:
            raise PedalRefused(exc.message, E_FORMAT)
        meta = {
            "id": model_id, "size": size, "sha256": sha, "name": _text(message, K_NAME, MAX_NAME, False) or filename[:MAX_NAME],
            "platform": platform, "tone_id": _field(message, K_TONE, int, False, most=MAX_ID),
            "size_class": _size_class(message),
            "updated_at": _text(message, K_UPDATED, MAX_NAME, False), "filename": filename,
        }
        self._close_transfer()
        failure, self.failure = self.failure, None
        if failure is not None and failure[0] == model_id and not isinstance(failure[1], OSError):
            raise failure[1]  # e.g. LibraryFull found while writing: say so once
        offset = self.store.open(meta)
        self.transfer = [model_id, size, offset, offset]
        self.gap = False
        return {K_ID: model_id, K_OFFSET: offset}

    def _wifi(self, message):
        """Save the network (store.set_wifi, which restarts the pedal when asked, after
        this reply); the reply has the SSID and the pedal's network name, never the
        password."""
        ssid = message.get(K_SSID)
        password = message.get(K_PASSWORD)
        password = "" if password is None else password
        problem = wifi_problem(ssid, password)
        if problem:
            raise PedalRefused(problem, E_BAD_REQUEST)
        set_wifi = getattr(self.store, "set_wifi", None)
        if set_wifi is None:  # a store with no Wi-Fi (a test's, a wired-only pedal's)
            raise PedalRefused("this pedal has no Wi-Fi to set", E_BAD_REQUEST)
        restart = message.get(K_RESTART) is True
        ssid = ssid.strip()
        hostname = set_wifi(ssid, password, restart)
        return {K_SSID: ssid, K_RESTART: restart, K_HOSTNAME: hostname}

    def _commit(self, model_id):
        transfer = self.transfer
        if transfer is None or transfer[0] != model_id:
            raise PedalRefused("no transfer of model %d is open" % model_id, E_NO_TRANSFER)
        if transfer[2] != transfer[1]:
            raise PedalRefused("model %d has %d of %d bytes" % (model_id, transfer[2], transfer[1]), E_INTEGRITY)
        self._flush()
        self.transfer = None
        sha = self.store.commit()  # verifies from flash, installs; raises on a mismatch
        return {K_ID: model_id, K_SHA: sha, K_SIZE: transfer[1]}


def _code_of(exc):
    """The ERROR code for a store's exception: its `link_code`, else by kind."""
    code = getattr(exc, "link_code", None)
    if code:
        return code
    if isinstance(exc, FormatError):
        return E_FORMAT
    return E_INTEGRITY if isinstance(exc, IntegrityError) else E_STORAGE
