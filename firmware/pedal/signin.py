"""Signing the pedal in to TONE3000, from its web page.

Today's service (OAuth 2.0, the pedal's `client_id` from its config):

* the LAN relay (default): "Sign in with TONE3000" sends the phone to TONE3000's
  authorize page with PKCE and `redirect_uri = http://<the pedal's own address>/callback`
  (built from the pedal's station address and port, never from the request's Host
  header); TONE3000 brings the phone back through its lan-bridge with `code` and
  `state`; the pedal redeems the code with the verifier it kept in RAM;
* the device grant ("Sign in with a code"), where the phone and the pedal share no LAN
  (the pedal's set-up access point): the page and the console show a short code and the
  address to enter it at, and the pedal polls until the user approved.

The seed's v1 service: the OTP-only flow, back to `/callback/<nonce>` with an api_key.

A sign-in started on the page stays pending in RAM for PENDING_MS, single use; up to
PENDING_MAX at once (two phones, two tabs), the oldest dropped first.  An answer that
matches none of them is refused: nobody can link the pedal to an account of their own.
"""

import asyncio
import binascii
import os

from tonecore.auth import OtpSignIn
from tonecore.errors import SignInError, ToneError
from tonecore.oauth import DeviceSignIn, OAuthFlow, PkceSignIn, device_authorize, device_sign_in

from .console import log

PENDING_MAX = 4
PENDING_MS = 15 * 60 * 1000


class SignIns:
    """The pedal's sign-ins in progress (see the module docstring)."""

    def __init__(self, pedal):
        self.pedal = pedal
        self.client_id = pedal.settings.get("client_id") or None
        self.pending = []  # [(key, flow, started ms)]: state (OAuth) or nonce (OTP)
        self.device = None  # while a device sign-in waits: what to show
        self.device_task = None
        self.error = None  # why the last sign-in failed, in words, for the page

    @property
    def mode(self):
        """"oauth", "otp" (the seed's v1 service) or "no-key" (OAuth without a client_id)."""
        if not self.pedal.client.dialect.oauth:
            return "otp"
        return "oauth" if self.client_id else "no-key"

    def refresh_flow(self, name, client_id):
        """The flow that refreshes a stored session that was made by flow `name`."""
        api = self.pedal.api
        if name in ("pkce", "device", "oauth") and (client_id or self.client_id):
            return OAuthFlow(api, client_id or self.client_id)
        return OtpSignIn(api, None)

    def own_address(self):
        """http://<the pedal's address>[:port]: where a phone on its LAN reaches it."""
        settings = self.pedal.settings
        host = settings.get("address") or settings.get("portal_host") or "192.168.4.1"
        port = settings.get("portal_port", 80)
        return "http://%s%s" % (host, "" if port == 80 else ":%d" % port)

    def start(self):
        """A sign-in for the page's button: the URL to send the phone to.

        Raises:
            SignInError: this pedal has no client_id for today's service.
        """
        if self.mode == "no-key":
            raise SignInError("this pedal has no TONE3000 app key: put \"client_id\" (a publishable key from "
                              "TONE3000 -> Settings -> API Keys) in its config.json")
        api = self.pedal.api
        if self.mode == "oauth":
            flow = PkceSignIn(api, self.client_id, self.own_address() + "/callback")
            key = flow.state
        else:
            key = binascii.hexlify(os.urandom(12)).decode()
            flow = OtpSignIn(api, self.own_address() + "/callback/" + key)
        self.pending = [p for p in self.pending if self._fresh(p)][-(PENDING_MAX - 1):]
        self.pending.append((key, flow, self.pedal.clock()))
        self.error = None
        return flow.start_url()

    def _fresh(self, pending):
        return self.pedal.clock() - pending[2] < PENDING_MS

    def take(self, key):
        """The flow of the pending sign-in `key` (state or nonce), once; None if unknown."""
        for at in range(len(self.pending)):
            item = self.pending[at]
            if item[0] == key and self._fresh(item):
                del self.pending[at]
                return item[1]
        return None

    async def finish(self, flow, params):
        """Redeem a callback of `flow` (code + state, or api_key): tokens on flash first."""
        pedal = self.pedal
        old = pedal.session.flow
        pedal.session.flow = flow  # it makes the exchange, then the refreshes
        try:
            await pedal.driver.run_async(pedal.client.sign_in(params))
        except BaseException:
            pedal.session.flow = old
            raise
        pedal.session.flow = self.refresh_flow(flow.name, getattr(flow, "client_id", None))  # verifier etc. go
        await pedal.signed_in()

    # -- the device grant -------------------------------------------------------------

    def start_device(self):
        """Start a device sign-in unless one is waiting; True when a new one started."""
        if self.mode != "oauth":
            raise SignInError("a sign-in with a code needs today's TONE3000 and the pedal's app key")
        if self.device_task is not None and not self.device_task.done():
            return False
        self.error = None
        self.device_task = asyncio.create_task(self._device())
        return True

    async def _device(self):
        pedal = self.pedal
        flow = DeviceSignIn(pedal.api, self.client_id)
        old = pedal.session.flow
        try:
            grant = await pedal.driver.run_async(device_authorize(pedal.client, flow))
            self.device = {
                "user_code": grant.user_code, "verification_uri": grant.verification_uri,
                "verification_uri_complete": grant.verification_uri_complete,
                "expires_in_s": (grant.expires_ms - pedal.clock()) // 1000,
            }
            log("sign-in: on a phone or computer, open %s and enter the code %s" % (grant.verification_uri,
                                                                                   grant.user_code))
            _log_qr(grant.verification_uri_complete or grant.verification_uri)
            pedal.session.flow = flow
            await pedal.driver.run_async(device_sign_in(pedal.client, flow, grant))
            await pedal.signed_in()
        except ToneError as exc:
            if not pedal.session.signed_in:
                pedal.session.flow = old
            self.error = str(exc)
            log("sign-in: failed: %s" % exc)
        finally:
            self.device = None

    def status(self):
        return {"mode": self.mode, "device": self.device, "error": self.error}


def _log_qr(address):
    """The address as a QR code on the console, for a phone's camera (skipped, with a
    line saying so, when the heap is too short for it: the code and address are shown)."""
    from tonecore.qr import QrCode, text_lines

    try:
        for line in text_lines(QrCode(address)):
            log(line)
    except (MemoryError, ValueError) as exc:
        log("sign-in: no QR code (%s)" % (exc,))
