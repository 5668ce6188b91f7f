"""Helpers for tests of the simulated pedal: read its flash image on the host, sign it
in through its portal the way a phone would, wait for its status."""

import json
import time

import httpx

from tonebridge.dev import phone
# check_library(path) -> (manifest, files), raising when a model does not verify
from tonebridge.boards.flashimage import check_library, library, mount, problems, read  # noqa: F401  (used by the tests)

EMAIL = "demo@example.com"


def status(pedal):
    return httpx.get(pedal.portal_url + "status.json", timeout=10).json()


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
    final = phone.sign_in(pedal.portal_url + "signin", email, phone.outbox_code(emulator_base, email))
    assert final.status_code == 200 and str(final.url) == pedal.portal_url, (final.status_code, final.url)
    return final
