"""Today's sign-in on the simulated pedal (the real firmware under MicroPython): the LAN
relay (OAuth + PKCE with the pedal's own address) and the device grant, against the
emulator speaking today's TONE3000."""

import json

import httpx
from pedal_helpers import EMAIL, mount, owner_cookies, portal, quiet_pedal, read, status, wait_status
from signin_helpers import configure, request_log

from tonebridge.dev import phone

LAN_ADDRESS = "10.77.0.2"  # the pedal's "Wi-Fi" address; the phone reaches it on loopback


def signed_in(data):
    return data["signed_in"]


def test_lan_relay_sign_in_from_two_phones(emulator, lib, tmp_path):
    with quiet_pedal(emulator, tmp_path / "flash.img", lib, TONEBRIDGE_ADDRESS=LAN_ADDRESS) as pedal:
        pedal.start()
        port = pedal.portal_url.rstrip("/").rsplit(":", 1)[1]
        own = "http://%s:%s/callback" % (LAN_ADDRESS, port)
        starts = [portal(pedal).get(pedal.portal_url + "signin", timeout=10) for _ in range(2)]  # two phones
        for start in starts:
            assert start.status_code == 302
            query = dict(httpx.URL(start.headers["location"]).params)
            assert start.headers["location"].startswith(emulator.base_url + "/api/v1/oauth/authorize?")
            assert query["redirect_uri"] == own  # the pedal's own address, whatever the Host header said
            assert query["code_challenge_method"] == "S256" and len(query["state"]) >= 20
        # an answer the pedal did not ask for signs nothing in
        for path in ("callback?code=C&state=forged", "callback?code=C", "callback/0123?api_key=k"):
            reply = portal(pedal).get(pedal.portal_url + path, timeout=10)
            assert reply.status_code == 400 and "not from this pedal" in reply.text
        assert status(pedal)["signed_in"] is False

        hosts = {LAN_ADDRESS: "127.0.0.1"}
        final = phone.sign_in(starts[0].headers["location"], EMAIL, phone.outbox_code(emulator.base_url, EMAIL),
                              hosts=hosts, cookies=owner_cookies(pedal))
        assert final.status_code == 200 and "Signed in as <b>demo_player</b>" in final.text
        bridge = [e for e in request_log(emulator.base_url) if e["path"] == "/api/v1/oauth/lan-bridge"]
        assert bridge and bridge[-1]["status"] == 307
        # the second phone's sign-in still works: both were pending, each single use
        again = phone.sign_in(starts[1].headers["location"], EMAIL, phone.outbox_code(emulator.base_url, EMAIL),
                              hosts=hosts, cookies=owner_cookies(pedal))
        assert again.status_code == 200 and "Signed in" in again.text
        replay = portal(pedal).get(pedal.portal_url + "callback?code=C&state=" + dict(
            httpx.URL(starts[0].headers["location"]).params)["state"], timeout=10)
        assert replay.status_code == 400
        console = "\n".join(pedal.console_lines())
    session = json.loads(read(mount(str(tmp_path / "flash.img")), "session.json"))
    assert session["flow"] == "pkce" and session["client_id"] == "t3k_pub_tonebridge_demo"
    assert session["access_token"] not in console and session["refresh_token"] not in console
    # a restart: still signed in, refreshes through today's token endpoint
    configure(emulator.base_url, clock_offset=3700)
    try:
        with quiet_pedal(emulator, tmp_path / "flash.img", lib) as pedal:
            pedal.start()
            data = wait_status(pedal, lambda s: s["user"] == "demo_player", 30, "profile after a refresh")
            assert data["signed_in"]
        refreshes = [e for e in request_log(emulator.base_url) if e["path"] == "/api/v1/oauth/token"]
        assert refreshes[-1]["status"] == 200
    finally:
        configure(emulator.base_url, clock_offset=0)


def test_a_declined_sign_in_says_so_and_stores_nothing(emulator, lib, tmp_path):
    with quiet_pedal(emulator, tmp_path / "flash.img", lib) as pedal:
        pedal.start()
        location = portal(pedal).get(pedal.portal_url + "signin", timeout=10).headers["location"]
        final = phone.sign_in(location, EMAIL, phone.outbox_code(emulator.base_url, EMAIL), consent="deny",
                              cookies=owner_cookies(pedal))
        assert final.status_code == 400 and "declined" in final.text
        assert status(pedal)["signed_in"] is False


def test_device_grant_from_the_page(emulator, lib, tmp_path):
    configure(emulator.base_url, device_interval=1)
    try:
        with quiet_pedal(emulator, tmp_path / "flash.img", lib) as pedal:
            pedal.start()
            page = portal(pedal).get(pedal.portal_url, timeout=10).text
            assert "Sign in with a code" in page
            assert portal(pedal).post(pedal.portal_url + "signin/device", timeout=10).status_code == 303
            shown = wait_status(pedal, lambda s: s["sign_in"]["device"], 20, "a code to enter")["sign_in"]["device"]
            assert shown["verification_uri"] == emulator.base_url + "/activate"
            page = portal(pedal).get(pedal.portal_url, timeout=10).text
            assert shown["user_code"] in page and 'http-equiv="refresh"' in page
            assert "<svg" in page and 'aria-label="QR code"' in page  # for another device's camera
            pedal.wait_for_console(lambda line: shown["user_code"] in line, 10)  # the console shows it too
            pedal.wait_for_console(lambda line: "##############" in line, 10)  # and draws the QR code
            done = phone.activate(shown["verification_uri"], shown["user_code"], EMAIL,
                                  phone.outbox_code(emulator.base_url, EMAIL))
            assert "Device connected" in done.text
            data = wait_status(pedal, signed_in, 30, "signed in")
            assert data["sign_in"]["device"] is None
            data = wait_status(pedal, lambda s: s["user"] == "demo_player", 10, "profile")
    finally:
        configure(emulator.base_url, device_interval=5)
    session = json.loads(read(mount(str(tmp_path / "flash.img")), "session.json"))
    assert session["flow"] == "device"


def test_a_pedal_without_an_app_key_says_what_to_do(emulator, lib, tmp_path):
    with quiet_pedal(emulator, tmp_path / "flash.img", lib, TONEBRIDGE_CLIENT_ID="") as pedal:
        pedal.start()
        assert "no TONE3000 app key" in portal(pedal).get(pedal.portal_url, timeout=10).text
        reply = portal(pedal).get(pedal.portal_url + "signin", timeout=10)
        assert reply.status_code == 400 and "client_id" in reply.text
