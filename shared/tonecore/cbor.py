"""A small CBOR (RFC 8949) codec for the serial link's control messages.

Runs unchanged on CPython and MicroPython.  Only the subset the link needs:

    major 0, 1   integers in -2**64 .. 2**64-1        <-> int
    major 2      byte strings                          <-> bytes (encodes bytearray, memoryview)
    major 3      UTF-8 text strings                    <-> str
    major 4      arrays                                <-> list (encodes tuple)
    major 5      maps with int or str keys             <-> dict
    major 7      simple values 20, 21, 22              <-> False, True, None

Everything else is refused with CborError: floats, tags (bignums included), undefined
and other simple values, indefinite lengths, reserved additional information, invalid
UTF-8, duplicate or non-int/str map keys, truncated input, trailing bytes, nesting
deeper than `max_depth`.  `dumps` always writes the preferred (shortest) heads and map
entries in the dict's iteration order (insertion order on CPython; MicroPython dicts
keep no order, so compare decoded values, not bytes, when a map has several keys).

The decoder reads bytes from a serial line: every declared length or item count is
checked against the bytes that remain before anything is allocated, and any input
gives a value or CborError.  Decoded containers can still take far more memory than
their encoding (an empty array is one byte on the wire, some 40-80 bytes in RAM), so
the link caps message size.
"""

import struct

from tonecore.errors import ProtocolError

UINT64_MAX = 0xFFFFFFFFFFFFFFFF
DEFAULT_MAX_DEPTH = 16

# Additional information 24..27: the argument follows in 1, 2, 4 or 8 bytes.
_ARG_FORMATS = (">B", ">H", ">I", ">Q")
_SIMPLE_VALUES = {20: False, 21: True, 22: None}


class CborError(ProtocolError):
    """The bytes are not CBOR in our subset, or the value cannot be encoded in it."""


def _lax_utf8_decoder():
    """True when this runtime's UTF-8 decoder accepts overlong forms, surrogates or code
    points above U+10FFFF (MicroPython checks only the byte structure)."""
    for sample in (b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"):
        try:
            sample.decode("utf-8")
            return True
        except UnicodeError:
            pass
    return False


if _lax_utf8_decoder():  # pragma: no cover - MicroPython
    import re

    # Byte sequences that are well-formed in structure but not UTF-8 (RFC 3629 section
    # 4): C0/C1 and F5..FF never occur; after E0, ED, F0, F4 the next byte is limited.
    _NOT_UTF8 = re.compile(b"[\xc0\xc1\xf5-\xff]|\xe0[\x80-\x9f]|\xed[\xa0-\xbf]|\xf0[\x80-\x8f]|\xf4[\x90-\xbf]")
else:
    _NOT_UTF8 = None


# ---------------------------------------------------------------- encoding


def dumps(obj):
    """Encode `obj` as CBOR.

    Args:
        obj: int, bool, None, bytes/bytearray/memoryview, str, list/tuple or dict (keys
            int or str), nested freely.
    Returns:
        bytes, with the shortest head for every integer, length and count.
    Raises:
        CborError: a value outside the subset (float, set, an int beyond 64 bits, ...).
    """
    out = []
    _encode(obj, out)
    return b"".join(out)


def _head(major, argument):
    """The initial byte and argument of an item (0 <= argument <= 2**64-1)."""
    initial = major << 5
    if argument < 24:
        return bytes((initial | argument,))
    if argument <= 0xFF:
        return struct.pack(">BB", initial | 24, argument)
    if argument <= 0xFFFF:
        return struct.pack(">BH", initial | 25, argument)
    if argument <= 0xFFFFFFFF:
        return struct.pack(">BI", initial | 26, argument)
    return struct.pack(">BQ", initial | 27, argument)


def _encode(obj, out):
    # Booleans first: on CPython bool is a subclass of int.
    if obj is False or obj is True or obj is None:
        out.append(b"\xf4" if obj is False else b"\xf5" if obj is True else b"\xf6")
    elif isinstance(obj, int):
        if 0 <= obj <= UINT64_MAX:
            out.append(_head(0, obj))
        elif -UINT64_MAX - 1 <= obj < 0:
            out.append(_head(1, -1 - obj))
        else:
            raise CborError("CBOR: integer does not fit in 64 bits")
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        out.append(_head(2, len(data)))
        out.append(data)
    elif isinstance(obj, str):
        try:
            data = obj.encode("utf-8")
        except UnicodeError:  # a lone surrogate (CPython)
            raise CborError("CBOR: text is not encodable as UTF-8")
        out.append(_head(3, len(data)))
        out.append(data)
    elif isinstance(obj, (list, tuple)):
        out.append(_head(4, len(obj)))
        for item in obj:
            _encode(item, out)
    elif isinstance(obj, dict):
        out.append(_head(5, len(obj)))
        for key, value in obj.items():
            if not _is_key(key):
                raise CborError("CBOR: map keys must be int or str")
            _encode(key, out)
            _encode(value, out)
    else:
        raise CborError("CBOR: cannot encode %s" % type(obj).__name__)


def _is_key(key):
    return isinstance(key, str) or (isinstance(key, int) and key is not True and key is not False)


# ---------------------------------------------------------------- decoding


def loads(data, max_depth=DEFAULT_MAX_DEPTH):
    """Decode one CBOR item that fills `data` exactly.

    Args:
        data: bytes, bytearray or memoryview.
        max_depth: how many arrays/maps may nest (0: scalars only).
    Returns:
        int, bool, None, bytes, str, list or dict.
    Raises:
        CborError: anything outside the subset, malformed, truncated or followed by
            trailing bytes.  Never any other exception, whatever the bytes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CborError("CBOR: can only decode bytes, not %s" % type(data).__name__)
    view = memoryview(data)
    if getattr(view, "format", "B") != "B":  # e.g. a view of an array("H"): use its raw bytes
        view = memoryview(bytes(view))
    try:
        value, pos = _decode(view, 0, max_depth)
    except RuntimeError:  # RecursionError on CPython: only with a huge max_depth
        raise CborError("CBOR: nested too deeply for this interpreter")
    if pos != len(view):
        raise CborError("CBOR: %d byte(s) left over after the item" % (len(view) - pos))
    return value


def _decode(view, pos, depth):
    """Decode the item at `pos`; returns (value, position after it).

    `depth` is how many more arrays/maps may open.
    """
    if pos >= len(view):
        raise CborError("CBOR: truncated input")
    initial = view[pos]
    major = initial >> 5
    info = initial & 0x1F
    pos += 1
    if major == 7:
        # Checked before reading an argument: floats (25..27) and simple(24, n) go.
        if info in _SIMPLE_VALUES:
            return _SIMPLE_VALUES[info], pos
        if 25 <= info <= 27:
            raise CborError("CBOR: floats are not supported")
        raise CborError("CBOR: unsupported simple value (additional information %d)" % info)
    if major == 6:
        raise CborError("CBOR: tags are not supported")
    if info < 24:
        argument = info
    elif info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(view):
            raise CborError("CBOR: truncated head")
        argument = struct.unpack_from(_ARG_FORMATS[info - 24], view, pos)[0]
        pos += size
    elif info == 31:
        raise CborError("CBOR: indefinite lengths are not supported")
    else:
        raise CborError("CBOR: reserved additional information %d" % info)
    return _DECODERS[major](view, pos, argument, depth)


def _unsigned(view, pos, argument, depth):
    return argument, pos


def _negative(view, pos, argument, depth):
    return -1 - argument, pos


def _string_end(view, pos, length, what):
    """End of a string of `length` bytes at `pos`, checked before anything is copied."""
    if length > len(view) - pos:
        raise CborError("CBOR: truncated " + what)
    return pos + length


def _byte_string(view, pos, length, depth):
    end = _string_end(view, pos, length, "byte string")
    return bytes(view[pos:end]), end


def _text_string(view, pos, length, depth):
    end = _string_end(view, pos, length, "text string")
    try:
        text = str(view[pos:end], "utf-8")
    except UnicodeError:
        raise CborError("CBOR: text string is not valid UTF-8")
    # MicroPython's re cannot search a memoryview: the copy is only made there.
    if _NOT_UTF8 is not None and _NOT_UTF8.search(bytes(view[pos:end])):  # pragma: no cover
        raise CborError("CBOR: text string is not valid UTF-8")
    return text, end


def _array(view, pos, count, depth):
    if depth <= 0:
        raise CborError("CBOR: nested too deeply")
    if count > len(view) - pos:  # every item takes at least one byte
        raise CborError("CBOR: truncated array")
    items = []
    for _ in range(count):
        item, pos = _decode(view, pos, depth - 1)
        items.append(item)
    return items, pos


def _map(view, pos, count, depth):
    if depth <= 0:
        raise CborError("CBOR: nested too deeply")
    if count > (len(view) - pos) // 2:  # a key and a value, at least one byte each
        raise CborError("CBOR: truncated map")
    result = {}
    for _ in range(count):
        key, pos = _decode(view, pos, depth - 1)
        if not (isinstance(key, str) or type(key) is int):
            raise CborError("CBOR: map keys must be int or str")
        if key in result:
            raise CborError("CBOR: duplicate map key")
        value, pos = _decode(view, pos, depth - 1)
        result[key] = value
    return result, pos


# One decoder per major type (6 and 7 are handled in _decode).
_DECODERS = {0: _unsigned, 1: _negative, 2: _byte_string, 3: _text_string, 4: _array, 5: _map}
