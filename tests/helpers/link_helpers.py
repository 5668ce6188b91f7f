"""Shared pieces of the USB link tests: model files, a pedal with its console open."""

import hashlib
import json
import struct

import serial

from tonebridge.link.session import PedalLink

NO_API = "http://127.0.0.1:9/api/v1"  # the link needs no API; nothing listens there


def nam_bytes(size, seed=0):
    """A complete NAM (JSON) model file of about `size` bytes; incompressible enough."""
    digits = []
    block = bytes([seed])
    total = 40
    while total < size:
        block = hashlib.sha256(block).digest()
        number = "%.6f" % (int.from_bytes(block[:4], "big") / 2 ** 32)
        digits.append(number)
        total += len(number) + 2
    return json.dumps({"version": "0.5.4", "architecture": "WaveNet", "config": {}, "weights": digits}).encode()


def wav_bytes(size, seed=0):
    """A mono 16-bit 48 kHz WAV impulse response of `size` bytes of noise (incompressible)."""
    frames = (size - 44) // 2
    data = bytearray()
    block = bytes([seed, 1])
    while len(data) < frames * 2:
        block = hashlib.sha256(block).digest()
        data += block
    data = bytes(data[:frames * 2])
    head = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, 1, 48000, 96000, 2, 16,
                       b"data", len(data))
    return head + data


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def open_link(path, **kw):
    """A PedalLink on the pty at `path` (plain pyserial; no USB lookup)."""
    port = serial.Serial(path, 115200, exclusive=True)
    link = PedalLink(port, **kw)
    link.hello()
    return link


def pedal_env(**extra):
    env = {"TONEBRIDGE_SYNC_ON_BOOT": "0"}
    env.update(extra)
    return env
