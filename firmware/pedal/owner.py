"""The pedal's owner: which browsers may change the pedal or see whose it is.

Anyone on the pedal's network can open its page, so the page is in two parts.  Without
an owner's cookie it shows only the board and how to pair; with one, everything.
Pairing needs a physical action or what only the console shows:

  * hold the footswitch for `hold_ms` (2 s): pairing is open for WINDOW_MS; the first
    Pair pressed on a page in that time gets the cookie, and pairing closes again;
  * or type the PIN the console printed (6 digits, new at every boot and after every
    pairing).  PIN_TRIES wrong PINs close PIN pairing for LOCK_MS and make a new PIN.

A paired browser holds a random 32-byte cookie (HttpOnly, SameSite=Strict); the flash
keeps only its SHA-256 in owners.json (the newest MAX_OWNERS phones).  "Unpair all
phones" on the page forgets them all.

The footswitch is any object with `pressed()` -> bool: a Pin on a board
(`PinFootswitch`), a file in the simulator (simboard).
"""

import asyncio
import hashlib
import os
import time

from tonecore.compat import hexlify

from .console import log
from .library import read_json, write_json

OWNERS = "owners.json"
COOKIE = "tb_owner"
MAX_OWNERS = 8
HOLD_MS = 2000
WINDOW_MS = 60000
PIN_TRIES = 5
LOCK_MS = 60000
POLL_MS = 50
MAX_AGE_S = 5 * 365 * 24 * 3600


class PairingRefused(Exception):
    """The browser may not pair now; the message says what to do."""


def _digest(token):
    return hexlify(hashlib.sha256(token.encode()).digest())


class Owners:
    """Args:
        root: the flash root (owners.json lives there).
        now_ms: a clock in milliseconds that never wraps (the pedal's Clock).
        hold_ms: how long the footswitch must be held to open pairing.
    """

    def __init__(self, root, now_ms, hold_ms=HOLD_MS):
        self.path = root.rstrip("/") + "/" + OWNERS
        self.now_ms = now_ms
        self.hold_ms = hold_ms
        data = read_json(self.path, None)
        hashes = data.get("owners") if isinstance(data, dict) else None
        self.hashes = [h for h in hashes if isinstance(h, str) and len(h) == 64][-MAX_OWNERS:] \
            if isinstance(hashes, list) else []
        self.window_until = None
        self.failures = 0
        self.locked_until = None
        self.pin = None
        self.new_pin()

    # -- state --------------------------------------------------------------------

    def new_pin(self):
        self.pin = "%06d" % (int.from_bytes(os.urandom(4), "big") % 1000000)
        log("owner: to pair a phone, hold the footswitch %d s or type PIN %s on the pedal's page"
            % (self.hold_ms // 1000 or 1, self.pin))

    def window_open(self):
        return self.window_until is not None and self.now_ms() < self.window_until

    def footswitch_held(self):
        """The footswitch was held: pairing is open for WINDOW_MS."""
        self.window_until = self.now_ms() + WINDOW_MS
        log("owner: pairing is open for %d s: press Pair on the phone's page" % (WINDOW_MS // 1000))

    def is_owner(self, cookie):
        """True when `cookie` (the request's tb_owner value, or None) is a paired one."""
        if not cookie or len(cookie) != 64:
            return False
        return _digest(cookie) in self.hashes

    # -- actions ------------------------------------------------------------------

    def pair(self, pin=None):
        """Pair a browser: by the open footswitch window, else by `pin`.

        Returns:
            the new cookie value (to send once, in Set-Cookie).
        Raises:
            PairingRefused: no window and no right PIN (the message says what to do).
        """
        now = self.now_ms()
        if self.window_open():
            self.window_until = None
        elif pin:
            if self.locked_until is not None and now < self.locked_until:
                raise PairingRefused("Too many wrong PINs: wait a minute, or hold the footswitch.")
            if pin.strip() != self.pin:
                self.failures += 1
                log("owner: a wrong pairing PIN was typed (%d of %d)" % (self.failures, PIN_TRIES))
                if self.failures >= PIN_TRIES:
                    self.failures = 0
                    self.locked_until = now + LOCK_MS
                    self.new_pin()
                raise PairingRefused("That PIN is not the one the pedal shows. Check its console and try again.")
            self.failures = 0
        else:
            raise PairingRefused("Hold the pedal's footswitch for %d seconds first, then press Pair "
                                 "(or type the PIN the pedal shows)." % (self.hold_ms // 1000 or 1))
        token = hexlify(os.urandom(32))
        self.hashes = (self.hashes + [_digest(token)])[-MAX_OWNERS:]
        self._save()
        log("owner: a phone was paired (%d paired)" % len(self.hashes))
        self.new_pin()  # a PIN is good for one phone
        return token

    def forget_all(self):
        """Unpair every phone (this one too)."""
        self.hashes = []
        self._save()
        log("owner: every phone was unpaired")

    def _save(self):
        write_json(self.path, {"owners": self.hashes})


def set_cookie(token):
    """The Set-Cookie header value for a new owner's cookie."""
    return "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict" % (COOKIE, token, MAX_AGE_S)


class PinFootswitch:
    """A footswitch between a GPIO and ground (the dev boards' BOOT button)."""

    def __init__(self, number):
        from machine import Pin

        self.pin = Pin(number, Pin.IN, Pin.PULL_UP)

    def pressed(self):
        return self.pin.value() == 0


async def watch(footswitch, owners):
    """Poll the footswitch; a hold of `owners.hold_ms` opens pairing (once per hold)."""
    down_since = None
    fired = False
    while True:
        await asyncio.sleep_ms(POLL_MS)
        try:
            pressed = footswitch.pressed()
        except Exception:  # a flaky switch (or sim file) must not end the pedal
            pressed = False
        if not pressed:
            down_since = None
            fired = False
            continue
        now = time.ticks_ms()
        if down_since is None:
            down_since = now
        elif not fired and time.ticks_diff(now, down_since) >= owners.hold_ms:
            fired = True
            owners.footswitch_held()
