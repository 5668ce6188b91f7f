"""The simulated pedal end to end: the real firmware under the MicroPython unix port,
its flash a littlefs image, talking to the real emulator over loopback.

Sign-in through the portal, sync, manage models, restart, power loss at random points
during installs, and a flash that fills up.  The flash image is checked on the host with
littlefs-python after each step.
"""

import json
import random
import time

import httpx
import pytest
from pedal_helpers import EMAIL, check_library, library, owner_cookies, portal, sign_in, status, sync_finished, wait_status
from signin_helpers import configure, model_info

from tonebridge.dev import phone
from tonebridge.dev.emulator.server import EmulatorServer
from tonebridge.dev.simulator import SimError, SimulatedPedal, ensure_flash, stage_firmware


@pytest.fixture
def emulator():
    with EmulatorServer() as server:
        yield server


def pedal_for(emulator, flash, lib, **env):
    return SimulatedPedal(emulator.base_url + "/api/v1", str(flash), lib=lib, env=env)  # heap: the board's 128 KB for data


def test_sign_in_through_the_portal_then_sync_favorites_into_flash(emulator, lib, tmp_path):
    """The seed's OTP sign-in against a TONE3000 API v1 service (today's: test_pedal_signin)."""
    # Two boots sync within a minute, each pacing itself from scratch: together they come
    # close to the service's 100 requests a minute.  Not a rate-limit test.
    configure(emulator.base_url, rate_limit=100000, dialect="v1")
    flash = tmp_path / "flash.img"
    with pedal_for(emulator, flash, lib, TONEBRIDGE_DIALECT="v1") as pedal:
        pedal.start()
        before = status(pedal)
        assert before["signed_in"] is False and before["models"] == [] and before["board"] == "unix_sim"
        page = portal(pedal).get(pedal.portal_url, timeout=10).text
        assert "Sign in with TONE3000" in page and 'name="viewport"' in page
        signin = portal(pedal).get(pedal.portal_url + "signin", timeout=10)
        assert signin.status_code == 302
        location = signin.headers["location"]
        assert location.startswith(emulator.base_url + "/api/v1/auth?") and "otp_only=true" in location
        assert "redirect_url=http%3A%2F%2F127.0.0.1%3A" in location and "%2Fcallback" in location

        # a callback the page did not start (someone else's link) signs nothing in
        from signin_helpers import fetch_api_key

        foreign = fetch_api_key(emulator.base_url)
        for path in ("callback?api_key=" + foreign, "callback/0123abcd?api_key=" + foreign):
            reply = portal(pedal).get(pedal.portal_url + path, timeout=10)
            assert reply.status_code == 400 and "not from this pedal" in reply.text
        assert status(pedal)["signed_in"] is False
        # the phone: the pedal's Sign-in link, email, emailed code, back to /callback/<nonce>
        location = portal(pedal).get(pedal.portal_url + "signin", timeout=10).headers["location"]
        nonce = location.split("%2Fcallback%2F", 1)[1].split("&", 1)[0]
        final = phone.sign_in(location, EMAIL, phone.outbox_code(emulator.base_url, EMAIL), cookies=owner_cookies(pedal))
        assert final.status_code == 200 and str(final.url) == pedal.portal_url
        replay = portal(pedal).get(pedal.portal_url + "callback/%s?api_key=%s" % (nonce, foreign), timeout=10)
        assert replay.status_code == 400  # that nonce was used up
        evil = portal(pedal).post(pedal.portal_url + "sync", headers={"Origin": "http://evil.example"}, timeout=10)
        assert evil.status_code == 403
        done = wait_status(pedal, sync_finished, 120, "finished sync")
        assert done["signed_in"] and done["user"] == "demo_player"
        assert done["sync"]["state"] == "done" and done["sync"]["failed"] == 0, done["sync"]
        models = done["models"]
        assert len(models) >= 10 and sum(m["bytes"] for m in models) >= 4_000_000
        assert {m["platform"] for m in models} >= {"nam", "ir", "aida-x", "proteus"}
        console = "\n".join(pedal.console_lines())
        assert "sync: done" in console

        # every model on flash is byte-for-byte what the service serves
        manifest, files = check_library(str(flash))
        for entry in manifest["models"]:
            assert entry["sha256"] == model_info(emulator.base_url, entry["id"])["sha256"]
        assert not [name for name in files if name.endswith((".part", ".tmp"))]

        # the tokens are on flash, and never on the console
        from pedal_helpers import mount, read

        session = json.loads(read(mount(str(flash)), "session.json"))
        assert session["access_token"] not in console and session["refresh_token"] not in console

        # choose the active model, delete another
        first, second = models[0]["id"], models[1]["id"]
        reply = portal(pedal).post(pedal.portal_url + "models/%d/activate" % second, headers={"accept": "application/json"})
        assert reply.status_code == 200 and status(pedal)["active"] == second
        reply = portal(pedal).post(pedal.portal_url + "models/%d/delete" % first, headers={"accept": "application/json"})
        assert reply.status_code == 200
        assert first not in [m["id"] for m in status(pedal)["models"]]
        assert portal(pedal).post(pedal.portal_url + "models/999999/delete",
                                  headers={"accept": "application/json"}).status_code == 404
        gone = portal(pedal).post(pedal.portal_url + "models/999999/delete", data={"confirm": "1"})
        assert gone.status_code == 303 and gone.headers["location"] == "/?m=gone"  # a form: back to the page
        manifest, files = check_library(str(flash))
        assert manifest["active"] == second and first not in [e["id"] for e in manifest["models"]]
        assert not [name for name in files if name.startswith("%d-" % first)]  # the file is gone too

    # a restart on the same flash: still signed in; the sync fetches only what is missing
    with pedal_for(emulator, flash, lib, TONEBRIDGE_DIALECT="v1") as pedal:
        pedal.start()
        again = wait_status(pedal, sync_finished, 120, "finished sync")
        assert again["signed_in"] and again["sync"]["installed"] == 1, again["sync"]  # the deleted one
        assert again["sync"]["up_to_date"] == len(models) - 1
        assert again["active"] == second


def test_the_host_sync_and_the_pedal_sync_follow_one_policy(emulator, lib, tmp_path):
    """After the pedal's own Wi-Fi sync, `tonebridge pedal sync` over USB finds every model
    the pedal holds up to date and pushes nothing (it once walked the favorites only:
    "pushed 0, up to date 40" while the pedal held 51)."""
    import os
    import subprocess
    import sys

    from signin_helpers import sign_in_home

    configure(emulator.base_url, rate_limit=100000)  # two full listings: not a rate-limit test
    flash = tmp_path / "flash.img"
    with pedal_for(emulator, flash, lib) as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        done = wait_status(pedal, sync_finished, 120, "sync")
        assert done["sync"]["state"] == "done" and done["sync"]["failed"] == 0, done["sync"]
        held = sorted(m["id"] for m in done["models"])
        sign_in_home(emulator.base_url, tmp_path / "home", dialect="current")  # A2 models too, as the pedal
        env = dict(os.environ, TONEBRIDGE_HOME=str(tmp_path / "home"), TONEBRIDGE_API=emulator.base_url,
                   TONEBRIDGE_CACHE=str(tmp_path / "cache"))
        host = subprocess.run([sys.executable, "-m", "tonebridge", "pedal", "sync", "--port", pedal.serial_path,
                               "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert host.returncode == 0, host.stderr
    report = json.loads(host.stdout)
    assert report["pushed"] == [] and report["failed"] == [] and report["skipped"] == [], report
    assert sorted(report["up_to_date"]) == held and len(held) > 40  # the created tones' models too


def test_sync_now_and_a_changed_model_is_replaced(emulator, lib, tmp_path):
    # Two full syncs back to back would (rightly) be paced to 90 requests a minute.
    configure(emulator.base_url, rate_limit=100000)
    flash = tmp_path / "flash.img"
    with pedal_for(emulator, flash, lib, TONEBRIDGE_REQUESTS_PER_MINUTE="200") as pedal:
        pedal.start()
        assert portal(pedal).post(pedal.portal_url + "sync").status_code == 401  # not signed in
        sign_in(pedal, emulator.base_url)
        wait_status(pedal, sync_finished, 120, "first sync")
        old = {e["id"]: e for e in library(str(flash))[0]["models"]}
        new = httpx.post(emulator.base_url + "/_emulator/models/1008/update", timeout=5).json()
        reply = portal(pedal).post(pedal.portal_url + "sync")
        assert reply.status_code == 202 and reply.json()["started"] is True
        done = wait_status(pedal, sync_finished, 120, "second sync")
        assert done["sync"]["installed"] == 1
        manifest, files = check_library(str(flash))
        entry = [e for e in manifest["models"] if e["id"] == 1008][0]
        assert entry["sha256"] == new["sha256"] != old[1008]["sha256"]
        assert old[1008]["file"] not in files  # the old version's file was removed


def test_flash_full_is_a_clear_error_and_keeps_earlier_models(emulator, lib, tmp_path):
    flash = tmp_path / "small.img"
    with open(flash, "wb") as f:
        f.truncate(160 * 4096)  # 640 KB: room for the first model or two, not the favorites
    with pedal_for(emulator, flash, lib) as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        done = wait_status(pedal, sync_finished, 120, "sync")
        assert done["sync"]["state"] == "error" and "not enough flash" in done["sync"]["error"]
        kept = done["models"]
        assert kept  # what fitted before stays installed

        configure(emulator.base_url, chunked=True)  # no Content-Length: found out mid-download
        portal(pedal).post(pedal.portal_url + "sync")
        time.sleep(0.2)
        done = wait_status(pedal, sync_finished, 120, "sync")
        assert done["sync"]["state"] == "error" and "flash filled up" in done["sync"]["error"]
        now = done["models"]
        assert [m for m in now if m["id"] in [k["id"] for k in kept]] == kept  # untouched
    manifest, files = check_library(str(flash))
    assert [e["id"] for e in manifest["models"]] == [m["id"] for m in now]
    assert not [name for name in files if name.endswith(".part")]  # the partial file was freed


def test_power_loss_during_installs_never_tears_a_model_and_resumes(emulator, lib, tmp_path):
    """Kill -9 the pedal at random points while it installs models (new ones, and new
    versions of installed ones), restart it on the same image each time."""
    flash = tmp_path / "flash.img"
    # 32 MB of flash: the favorites take ~13 MB, and a new version of a 3 MB model is
    # downloaded beside the old one (plus .part files of interrupted downloads): on the
    # board's 16 MB the last sync can run out of room, and this is not a flash-full test.
    ensure_flash(str(flash), 32 * 1024 * 1024)
    rng = random.Random(20261123)
    configure(emulator.base_url, rate_limit=100000)  # ~80 boots in a few minutes: not a rate-limit test
    with pedal_for(emulator, flash, lib, TONEBRIDGE_SYNC_ON_SIGN_IN="0") as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
    big = [1038, 1041, 1058, 1039]  # the larger files of demo's favorites: long installs
    during_install = resumed = 0
    cycles = 0
    while during_install < 30:
        cycles += 1
        assert cycles <= 120, "only %d of %d kills landed during an install" % (during_install, cycles)
        # new versions of two of the big models at every other boot (an old version or the
        # new one survives, never a torn one); the boots between resume what was cut
        if cycles % 2 == 1:
            for model_id in rng.sample(big, 2):
                httpx.post(emulator.base_url + "/_emulator/models/%d/update" % model_id, timeout=5)
        pedal = pedal_for(emulator, flash, lib)
        pedal.start()
        try:
            try:
                pedal.wait_for_console(lambda line: "sync: model" in line or "sync: done" in line, 60)
            except SimError as error:
                raise AssertionError("%s; console: %s" % (error, " | ".join(pedal.console_lines()[-8:])))
            # a 3 MB install takes ~0.1 s in the simulator: kill within the next ~0.25 s
            time.sleep(rng.uniform(0, 0.25))
        finally:
            lines_before_kill = pedal.console_lines()
            pedal.kill()
        sync_lines = [line for line in lines_before_kill if "sync:" in line]
        if sync_lines and "sync: done" not in sync_lines[-1] and "peak heap" not in sync_lines[-1]:
            during_install += 1
        resumed += sum(1 for line in lines_before_kill if "resuming at" in line)
        check_library(str(flash))  # mounts; every listed model verifies
        print("cycle %d: %s" % (cycles, sync_lines[-1] if sync_lines else "-"))
    # finally let it finish: everything is installed and verified
    with pedal_for(emulator, flash, lib) as pedal:
        pedal.start()
        done = wait_status(pedal, sync_finished, 180, "final sync")
        resumed += sum(1 for line in pedal.console_lines() if "resuming at" in line)
    assert done["sync"]["state"] == "done" and done["sync"]["failed"] == 0, done["sync"]
    manifest, files = check_library(str(flash))
    for entry in manifest["models"]:
        assert entry["sha256"] == model_info(emulator.base_url, entry["id"])["sha256"]  # the newest
    assert not [name for name in files if name.endswith((".part", ".tmp"))]
    assert resumed >= 3  # interrupted downloads continued from their .part


def test_a_failed_refresh_says_sign_in_again_and_a_new_sign_in_works(emulator, lib, tmp_path):
    flash = tmp_path / "flash.img"
    with pedal_for(emulator, flash, lib, TONEBRIDGE_SYNC_ON_SIGN_IN="0", TONEBRIDGE_SYNC_ON_BOOT="0") as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        assert status(pedal)["signed_in"] is True
        configure(emulator.base_url, clock_offset=40 * 86400)  # 40 days on: access and refresh expired
        assert portal(pedal).post(pedal.portal_url + "sync").status_code == 202
        done = wait_status(pedal, sync_finished, 60, "sync")
        assert done["sync"]["error"] == "sign in again"
        assert done["signed_in"] is False and done["message"] == "sign in again"
        assert "needs you to sign in again" in portal(pedal).get(pedal.portal_url, timeout=10).text
        assert portal(pedal).post(pedal.portal_url + "sync").status_code == 401
        from pedal_helpers import mount

        assert "session.json" not in mount(str(flash)).listdir("/")  # the dead tokens are gone
        assert any("TONE3000 needs a new sign-in" in line for line in pedal.console_lines())

        configure(emulator.base_url, clock_offset=0)
        sign_in(pedal, emulator.base_url)
        again = status(pedal)
        assert again["signed_in"] is True and again["message"] is None and again["user"] == "demo_player"


def test_downloads_follow_a_storage_redirect_without_the_token(emulator, lib, tmp_path):
    configure(emulator.base_url, storage_redirect=True, rate_limit=100000)
    flash = tmp_path / "flash.img"
    # Every download is two requests now, but only the API one counts toward the pacing
    # (90 a minute): the ~76 API requests of this sync go through without a wait.
    started = time.monotonic()
    with pedal_for(emulator, flash, lib) as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        done = wait_status(pedal, sync_finished, 120, "sync")
    assert done["sync"]["state"] == "done" and done["sync"]["failed"] == 0 and len(done["models"]) >= 10
    assert time.monotonic() - started < 45  # not paced to a minute
    from signin_helpers import request_log

    storage = [r for r in request_log(emulator.base_url) if r["origin"] == "storage"]
    assert storage and not any(r["has_authorization"] for r in storage)
    check_library(str(flash))


def test_the_pedal_paces_its_requests(emulator, lib, tmp_path):
    """The pedal's limiter, with a 2 s window instead of a minute: never more than the
    limit in any window, as the emulator saw the requests arrive."""
    import datetime

    from signin_helpers import request_log

    configure(emulator.base_url, rate_limit=100000)
    limit, window_s = 15, 2.0
    with pedal_for(emulator, tmp_path / "flash.img", lib, TONEBRIDGE_REQUESTS_PER_MINUTE=str(limit),
                   TONEBRIDGE_PACE_WINDOW_MS=str(int(window_s * 1000))) as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        done = wait_status(pedal, sync_finished, 120, "sync")
    assert done["sync"]["state"] == "done"
    times = sorted(datetime.datetime.fromisoformat(r["time"]).timestamp()
                   for r in request_log(emulator.base_url) if r["has_authorization"])
    assert len(times) > 3 * limit  # enough requests that pacing had to act
    busiest = max(sum(1 for t in times[i:] if t < start + window_s) for i, start in enumerate(times))
    assert busiest <= limit
    assert times[-1] - times[0] >= (len(times) // limit - 1) * window_s


def test_a_stale_download_of_a_model_no_longer_listed_is_removed(emulator, lib, tmp_path):
    from tonebridge.boards.flashimage import make_image

    flash = tmp_path / "flash.img"
    make_image(str(flash), {"models/99999.part": b"{" * 5000,
                            "models/99999.part.json": b'{"id": 99999, "updated_at": "x", "etag": null}'})
    with pedal_for(emulator, flash, lib) as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        done = wait_status(pedal, sync_finished, 120, "sync")
        assert done["sync"]["state"] == "done"
        assert any("removed 1 unfinished downloads" in line for line in pedal.console_lines())
    manifest, files = check_library(str(flash))
    assert "99999.part" not in files and "99999.part.json" not in files and len(manifest["models"]) >= 10


def test_models_larger_than_the_board_stores_are_skipped(emulator, tmp_path):
    """A board's MAX_MODEL_BYTES (here 1 MB): the 2.6 and 3 MB files are skipped, with or
    without a Content-Length, and nothing of them is left on flash."""
    import os
    import re

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "boards", "unix_sim", "board.py")) as f:
        board = re.sub(r"^MAX_MODEL_BYTES = .*$", "MAX_MODEL_BYTES = 1024 * 1024", f.read(), flags=re.M)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "boardinfo.py").write_text(board)
    small_lib = stage_firmware("unix_sim", str(tmp_path / "lib"), overlay=str(overlay))
    configure(emulator.base_url, rate_limit=100000)
    for chunked in (False, True):
        configure(emulator.base_url, chunked=chunked)
        flash = tmp_path / ("flash-%s.img" % chunked)
        with pedal_for(emulator, flash, small_lib) as pedal:
            pedal.start()
            sign_in(pedal, emulator.base_url)
            done = wait_status(pedal, sync_finished, 120, "sync")
        assert done["sync"]["state"] == "done" and done["sync"]["failed"] == 0, done["sync"]
        assert done["sync"]["too_large"] == 2
        manifest, files = check_library(str(flash))
        assert max(e["bytes"] for e in manifest["models"]) <= 1024 * 1024 and len(manifest["models"]) >= 10
        assert not [name for name in files if name.endswith(".part")]


def test_tokens_are_refreshed_before_expiry_and_the_rotated_pair_is_on_flash(emulator, lib, tmp_path):
    from pedal_helpers import mount, read
    from signin_helpers import request_log

    # 61 s tokens: with the 60 s margin every sync refreshes first (rotation on).
    configure(emulator.base_url, token_ttl=61, rate_limit=100000)
    flash = tmp_path / "flash.img"
    with pedal_for(emulator, flash, lib, TONEBRIDGE_SYNC_ON_SIGN_IN="0", TONEBRIDGE_SYNC_ON_BOOT="0") as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        time.sleep(1.5)  # now under 60 s left: due
        assert portal(pedal).post(pedal.portal_url + "sync").status_code == 202
        done = wait_status(pedal, sync_finished, 120, "sync")
        assert done["sync"]["state"] == "done" and done["signed_in"]
        console = "\n".join(pedal.console_lines())
    refreshes = [r for r in request_log(emulator.base_url) if r["path"] == "/api/v1/oauth/token"][1:]  # after the sign-in
    assert refreshes and all(r["status"] == 200 for r in refreshes)
    stored = json.loads(read(mount(str(flash)), "session.json"))
    assert stored["access_token"] not in console and stored["refresh_token"] not in console
    # What is on flash is the newest pair: the old ones were revoked by the rotation.
    reply = httpx.post(emulator.base_url + "/api/v1/auth/session/refresh", json={
        "refresh_token": stored["refresh_token"], "access_token": stored["access_token"]}, timeout=10)
    assert reply.status_code == 200


def test_the_pedal_signs_in_and_syncs_over_https_with_its_pinned_ca(lib, tmp_path):
    """The whole flow on TLS: the emulator on https with a test CA, the pedal trusting
    only that CA (DER), the phone too."""
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "ca.der").write_bytes(ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode()))
    trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with EmulatorServer(tls=(str(tmp_path / "server.pem"), str(tmp_path / "server.key")), tls_host="localhost") as emu:
        assert emu.base_url.startswith("https://localhost:")
        configure_tls = httpx.post(emu.base_url + "/_emulator/config", json={"storage_redirect": True}, verify=trust)
        assert configure_tls.status_code == 200
        flash = tmp_path / "flash.img"
        with SimulatedPedal(emu.base_url + "/api/v1", str(flash), lib=lib, ca=str(tmp_path / "ca.der")) as pedal:
            pedal.start()
            location = portal(pedal).get(pedal.portal_url + "signin", timeout=10).headers["location"]
            assert location.startswith("https://localhost:")
            final = phone.sign_in(location, EMAIL, phone.outbox_code(emu.base_url, EMAIL, verify=trust), verify=trust,
                                  cookies=owner_cookies(pedal))
            assert final.status_code == 200
            done = wait_status(pedal, sync_finished, 120, "sync")
        assert done["sync"]["state"] == "done" and done["sync"]["failed"] == 0 and len(done["models"]) >= 10
        manifest, _ = check_library(str(flash))
        info = httpx.get(emu.base_url + "/_emulator/models/%d" % manifest["models"][0]["id"], verify=trust).json()
        assert info["sha256"] == manifest["models"][0]["sha256"]
