"""The simulated pedal (the real firmware) syncing from a hostile TONE3000 server
(tests/helpers/hostile_api.py), one mode after another in one session.

Every sync ends in a clear error or a refusal within a bounded time; no file lands
outside the pedal's flash (its littlefs image is read back; the host folders the
process could reach are compared before and after); no token reaches another origin;
the console never carries a server's escape sequences; and afterwards the pedal,
restarted against the real emulator on the same flash, boots, serves its page and
completes a normal sync.

The pedal's HTTP limits are set small (TONEBRIDGE_NET) so that the slow modes take
seconds; `make soak` (TONEBRIDGE_SOAK=1) runs the floods and its defaults' pace too.
"""

import json
import os
import re
import ssl
import time

import pytest
import trustme
from hostile_api import CONTROL, HostileApi, TOKEN
from pedal_helpers import check_library, mount, portal, sign_in, status, sync_finished, wait_status

from tonebridge.boards.flashimage import make_image
from tonebridge.dev.emulator.server import EmulatorServer
from tonebridge.dev.simulator import SimulatedPedal

SOAK = os.environ.get("TONEBRIDGE_SOAK") == "1"
LIMITS = {"io_timeout_ms": 3000, "deadline_ms": 3000, "download_deadline_ms": 4000, "rate_window_ms": 1000,
          "min_rate_bytes": 64}
SESSION = {"access_token": TOKEN, "refresh_token": "REFRESH-SECRET", "expires_in": 3600, "flow": "pkce",
           "client_id": "t3k_pub_tonebridge_demo"}
SYNC_S = 30  # the longest any hostile sync may take (retry-after-nan: 4 x 1 s; drips: 2 x 1 s)

# mode -> (the sync's end state, words in its error or on the console)
API_MODES = {
    "deep-json": ("error", "malformed JSON"),
    "huge-header": ("error", "response head larger than 4096 bytes"),
    "many-headers": ("error", "response head larger than 4096 bytes"),
    "huge-line": ("error", "a line longer than 256 bytes"),
    "endless-chunked": ("error", "a response larger than 8192 bytes"),
    "drip": ("error", "sent too slowly (fewer than 64 bytes in 1 s)"),
    "endless-trailers": ("error", "sent more than 16 trailer lines"),
    "retry-after-nan": ("error", "rate limited by TONE3000 (HTTP 429)"),
    "error-escape": ("error", "access denied (HTTP 403)"),
}
FILE_MODES = {  # a model that fails is counted and the sync goes on ("done"); a full flash stops it
    "drip-file": ("done", "sent too slowly (fewer than 64 bytes in 1 s), 2 times; gave up"),
    "endless-trailers-file": ("done", "sent more than 16 trailer lines"),
    "endless-chunked-file": ("error", "the flash filled up while writing model 7"),  # 16 MB: about 2 s
}
if SOAK:
    FILE_MODES["huge-line-file"] = ("done", "a line longer than 256 bytes")  # six attempts: 16 s of backoff


def session_image(path):
    """A flash image holding only a session for the hostile server (no sign-in needed)."""
    record = dict(SESSION, expires_at=int(time.time()) + 3600)
    make_image(str(path), {"session.json": json.dumps(record).encode()})


def host_files(*folders):
    """{path: size} of every file under `folders` (what the pedal's process could write)."""
    found = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                if os.path.isfile(path):
                    found[path] = os.path.getsize(path)
    return found


def flash_files(flash):
    """Every file on the image, by its path from the flash root."""
    fs = mount(str(flash))
    found = []

    def walk(folder):
        for name in fs.listdir(folder or "/"):
            path = (folder + "/" + name) if folder else name
            if fs.stat(path).type == 2:  # a directory
                walk(path)
            else:
                found.append(path)

    walk("")
    return sorted(found)


# the firmware's own names: its state files, models, and a download kept to resume
PEDAL_NAMED = re.compile(r"([a-z_]+\.json|models/\d+-[0-9a-f]{8}\.[a-z]+|models/\d+\.part(\.json)?)$")


def assert_pedal_named(names):
    """Every file on the flash is named by the firmware: its state files (library.json,
    session.json, ...), models as <id>-<sha8>.<ext>, <id>.part; nothing a server named."""
    strays = [name for name in names if not PEDAL_NAMED.match(name)]
    assert not strays, strays


def start_sync(pedal):
    reply = portal(pedal).post("sync", headers={"accept": "application/json"}, timeout=10)
    assert reply.status_code == 202, (reply.status_code, reply.text)


def finished_sync(pedal, what, timeout_s=SYNC_S):
    started = time.monotonic()
    done = wait_status(pedal, sync_finished, timeout_s, "the end of the %s sync" % what)["sync"]
    return done, time.monotonic() - started


def console_since(pedal, mark):
    lines = pedal.console_lines()
    return "\n".join(lines[mark:]) if mark < len(lines) else ""


def assert_plain_console(pedal):
    console = "\n".join(pedal.console_lines())
    for char in CONTROL:
        assert char not in console, "a server's control character reached the console"
    assert TOKEN not in console


@pytest.fixture(scope="module")
def emulator():
    with EmulatorServer() as server:
        yield server


def test_a_hostile_server_cannot_hold_break_or_escape_the_pedal(lib, tmp_path, emulator):
    flash = tmp_path / "flash.img"
    session_image(flash)
    watched = (lib, str(tmp_path))
    before = host_files(*watched)
    env = {"TONEBRIDGE_NET": json.dumps(LIMITS), "TONEBRIDGE_PACE_WINDOW_MS": "1000"}  # not a pacing test
    with HostileApi("dangerous-names", drip_s=0.3) as api:
        with SimulatedPedal(api.api, str(flash), lib=lib, env=env) as pedal:
            pedal.start()
            # server-named files: each model lands as <id>-<sha8>.<ext> in /models, or is refused
            done, _ = finished_sync(pedal, "dangerous-names")
            assert done["state"] == "done", done
            assert_pedal_named(flash_files(flash))
            manifest, _ = check_library(str(flash))
            assert done["installed"] >= 4 and len(manifest["models"]) == done["installed"], done

            # markup and escapes in the names: escaped on the page, plain on the console
            api.mode, api.version = "markup", api.version + 1
            start_sync(pedal)
            done, _ = finished_sync(pedal, "markup")
            assert done["state"] == "done" and done["installed"] == 1, done
            page = portal(pedal).get("", timeout=10).text
            assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page

            # a model_url on another origin gets no token
            api.mode, api.version = "foreign-url", api.version + 1
            start_sync(pedal)
            done, _ = finished_sync(pedal, "foreign-url")
            assert done["state"] == "done" and done["installed"] == 1, done
            assert api.requests_to("/files/clean.nam")[-1].listener == "foreign"

            for mode, (state, words) in list(API_MODES.items()) + list(FILE_MODES.items()):
                api.mode, api.version = mode, api.version + 1
                mark = len(pedal.console_lines())
                start_sync(pedal)
                done, took = finished_sync(pedal, mode)
                said = "%s\n%s" % (done["error"], console_since(pedal, mark))  # the page's words, the log's
                assert done["state"] == state and words in said, (mode, done, said)
                if state == "error":
                    assert done["error"], (mode, done)
                if state == "done":
                    assert done["failed"] == 1, (mode, done)
                assert took < SYNC_S, (mode, took)
                assert pedal.returncode is None, mode  # still running
            api.stop_endless()
            assert_plain_console(pedal)
            status_now = status(pedal)
            assert status_now["signed_in"], status_now

        # no token ever went anywhere but the API's origin
        assert api.authorized("foreign") == [] and api.authorized("plain") == []
        assert set(api.authorized("api")) == {"Bearer " + TOKEN}

    # nothing written outside the flash: on the image only the library, the session and
    # models named by the pedal; on the host only the image (and its lock)
    assert_pedal_named(flash_files(flash))
    check_library(str(flash))
    after = host_files(*watched)
    new = sorted(set(after) - set(before))
    # the image, its lock; the simulator's measure of the firmware's code (the host writes it)
    assert all(path.startswith(str(flash)) or path.endswith("/.code-heap") for path in new), new

    # afterwards: the same flash, the real emulator, a new sign-in: boots, serves its page,
    # completes a normal sync
    fs = mount(str(flash))
    fs.remove("session.json")
    with open(str(flash), "wb") as f:
        f.write(fs.context.buffer)
    with SimulatedPedal(emulator.base_url + "/api/v1", str(flash), lib=lib) as pedal:
        pedal.start()
        assert portal(pedal).get("", timeout=10).status_code == 200
        sign_in(pedal, emulator.base_url, "captures_lab@creators.example")
        done = wait_status(pedal, sync_finished, 120, "a normal sync")["sync"]
        assert done["state"] == "done" and done["failed"] == 0 and done["installed"] >= 1, done
        check_library(str(flash))


def test_an_http_model_url_under_an_https_api_gets_no_token(lib, tmp_path):
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(context)
    der = tmp_path / "ca.der"
    der.write_bytes(ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode()))
    flash = tmp_path / "flash.img"
    session_image(flash)
    with HostileApi("http-url", tls=context, host="localhost") as api:
        with SimulatedPedal(api.api, str(flash), lib=lib, ca=str(der),
                            env={"TONEBRIDGE_NET": json.dumps(LIMITS)}) as pedal:
            pedal.start()
            done, _ = finished_sync(pedal, "http-url")
            assert_plain_console(pedal)
        downloads = api.requests_to("/files/")
    assert done["state"] == "done" and done["installed"] == 1, done
    assert [r.listener for r in downloads] == ["plain"]  # the file came over http...
    assert api.authorized("plain") == []  # ...without the token
    assert set(api.authorized("api")) == {"Bearer " + TOKEN}  # which went to the API, over https


@pytest.mark.skipif(not SOAK, reason="make soak: a byte every 14 s, against the pedal's own limits")
def test_a_byte_every_14_s_is_given_up_on_with_the_pedals_own_limits(lib, tmp_path):
    """With its defaults (4 KB per 10 s, a 30 s deadline for an API reply) the pedal gives
    up on a listing dripped a byte every 14 s in a window, and on such a download after
    two windows: never held for long."""
    flash = tmp_path / "flash.img"
    session_image(flash)
    with HostileApi("drip", drip_s=14) as api:
        with SimulatedPedal(api.api, str(flash), lib=lib) as pedal:
            pedal.start()
            done, took = finished_sync(pedal, "drip", 60)
            assert done["state"] == "error" and took < 25, (done, took)
            assert "sent too slowly (fewer than 4096 bytes in 10 s)" in "\n".join(pedal.console_lines())
            api.mode = "drip-file"
            start_sync(pedal)
            done, took = finished_sync(pedal, "drip-file", 120)
            assert done["state"] == "done" and done["failed"] == 1 and took < 50, (done, took)
            assert "2 times; gave up" in "\n".join(pedal.console_lines())
            api.stop_endless()
