"""Helpers for tests of the simulated pedal: read its flash image on the host, sign it
in through its portal the way a phone would, wait for its status."""

import hashlib
import json
import time

import httpx
import littlefs

from tonebridge import phone

BLOCK = 4096
EMAIL = "demo@example.com"


def mount(path):
    """The littlefs image at `path`, mounted with littlefs-python (a copy in memory)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    fs = littlefs.LittleFS(block_size=BLOCK, block_count=len(data) // BLOCK, read_size=32, prog_size=32,
                           lookahead_size=32, mount=False)
    fs.context.buffer = data
    fs.mount()
    return fs


def read(fs, path):
    with fs.open(path, "rb") as f:
        return f.read()


def library(path):
    """(manifest dict, {file name: bytes}) of the pedal's flash image at `path`."""
    fs = mount(path)
    try:
        manifest = json.loads(read(fs, "library.json"))
    except FileNotFoundError:
        manifest = {"models": [], "active": None}
    files = {}
    try:
        names = fs.listdir("models")
    except FileNotFoundError:
        names = []
    for name in names:
        files[name] = read(fs, "models/" + name)
    return manifest, files


def check_library(path):
    """Assert every manifest entry has its file with the recorded length and SHA-256.

    Returns:
        (manifest, files).
    """
    manifest, files = library(path)
    for entry in manifest["models"]:
        data = files.get(entry["file"])
        assert data is not None, "manifest names %s but it is not on flash" % entry["file"]
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"], \
            "model %s on flash is torn or altered" % entry["id"]
    return manifest, files


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
