"""Feature-detected shims so one codebase runs on CPython and MicroPython.

Detect features, not interpreters.  Everything here is tiny on purpose.
"""

try:  # pragma: no cover - MicroPython
    from micropython import const  # noqa: F401
except ImportError:  # pragma: no cover - CPython

    def const(value):
        """Stand-in for micropython.const on CPython."""
        return value


import binascii
import hashlib
import json  # noqa: F401  (re-exported: both runtimes have it)


def hexlify(data):
    """Lower-case hex string of `data` (bytes)."""
    return binascii.hexlify(data).decode()


def sha256():
    """A fresh SHA-256 hasher (hashlib on both runtimes)."""
    return hashlib.sha256()


def to_bytes(text):
    """UTF-8 encode `text`; bytes pass through."""
    if isinstance(text, bytes):
        return text
    return text.encode("utf-8")


def to_str(data):
    """UTF-8 decode `data`; str passes through."""
    if isinstance(data, str):
        return data
    return bytes(data).decode("utf-8")


def is_int(value):
    """True for a real integer, never for a bool (on either runtime)."""
    return type(value) is int


def is_bool(value):
    return value is True or value is False
