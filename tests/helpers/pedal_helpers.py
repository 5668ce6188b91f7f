"""Helpers for tests of the simulated pedal: read its flash image on the host, pair a
phone with it and sign it in through its portal the way a phone would, wait for its
status."""

import json
import time


from tonebridge.dev import phone
# check_library(path) -> (manifest, files), raising when a model does not verify
from tonebridge.boards.flashimage import check_library, library, mount, problems, read  # noqa: F401  (used by the tests)

EMAIL = "demo@example.com"


def quiet_pedal(emulator, flash, lib, **env):
    """A simulated pedal on `emulator` that syncs only when asked (not at boot or sign-in)."""
    from tonebridge.dev.simulator import SimulatedPedal

    env.setdefault("TONEBRIDGE_SYNC_ON_SIGN_IN", "0")
    env.setdefault("TONEBRIDGE_SYNC_ON_BOOT", "0")
    return SimulatedPedal(emulator.base_url + "/api/v1", str(flash), lib=lib, env=env)


def owner_cookies(pedal):
    """The owner's cookie for `pedal`: paired once with the PIN its console shows."""
    cookies = getattr(pedal, "owner_cookies", None)
    if cookies is None:
        deadline = time.monotonic() + 10
        while pedal.pairing_pin is None and time.monotonic() < deadline:
            time.sleep(0.05)
        cookies = pedal.owner_cookies = phone.pair(pedal.portal_url, pedal.pairing_pin)
    return cookies


def portal(pedal):
    """An httpx.Client for the pedal's page as its paired owner (kept on `pedal`)."""
    client = getattr(pedal, "owner_client", None)
    if client is None or getattr(pedal, "owner_url", None) != pedal.portal_url:
        client = pedal.owner_client = phone.owner_client(pedal.portal_url, owner_cookies(pedal))
        pedal.owner_url = pedal.portal_url
    return client


def status(pedal):
    """/status.json as the owner; when it cannot be read, the console's last lines are
    printed (pytest shows them with the failure)."""
    try:
        return portal(pedal).get("status.json", timeout=10).json()
    except Exception:
        print("CONSOLE", "\n".join(pedal.console_lines()[-40:]))
        raise


def wait_status(pedal, predicate, timeout_s=60.0, what="a status"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = status(pedal)
        if predicate(last):
            return last
        time.sleep(0.1)
    raise AssertionError("no %s within %g s; last status: %s" % (what, timeout_s, json.dumps(last)[:2000]))


def sync_finished(data):
    return data["sync"] is not None and data["sync"]["state"] in ("done", "error")


def sign_in(pedal, emulator_base, email=EMAIL):
    """Play the phone: open the pedal's Sign-in link, type the email and the emailed code."""
    final = phone.sign_in(pedal.portal_url + "signin", email, phone.outbox_code(emulator_base, email),
                          cookies=owner_cookies(pedal))
    assert final.status_code == 200 and str(final.url) == pedal.portal_url, (final.status_code, final.url)
    return final
