"""The portal against people on the pedal's network who are not its owner (the real
firmware under MicroPython): pairing by footswitch or PIN, what a browser that is not
paired may see and do, Host and Origin checks, and floods of hostile connections."""

import json
import socket
import time

import httpx
from pedal_helpers import mount, owner_cookies, portal, quiet_pedal, read, sign_in, status
from portal_flood import flood

from tonebridge.dev import phone


def address(pedal):
    host, port = pedal.portal_url[len("http://"):].rstrip("/").rsplit(":", 1)
    return host, int(port)


def test_a_stranger_sees_nothing_personal_and_changes_nothing(emulator, lib, tmp_path):
    flash = tmp_path / "flash.img"
    with quiet_pedal(emulator, flash, lib) as pedal:
        pedal.start()
        sign_in(pedal, emulator.base_url)
        assert status(pedal)["user"] == "demo_player"  # the owner sees it
        stranger = httpx.Client(base_url=pedal.portal_url, timeout=10)
        page = stranger.get("/")
        assert page.status_code == 200 and "Pair this phone" in page.text
        assert "demo_player" not in page.text and "Sign out" not in page.text
        assert stranger.get("status.json").json() == {"board": "unix_sim", "paired": False}
        for method, path in (("GET", "signin"), ("POST", "signin/device"), ("POST", "sync"), ("POST", "signout"),
                             ("POST", "models/1/activate"), ("POST", "models/1/delete"), ("POST", "owners/forget")):
            reply = stranger.request(method, path, headers={"Accept": "application/json"})
            assert reply.status_code == 401 and "pair this phone" in reply.json()["error"], (method, path)
        form = stranger.post("sync", data={"from": "page"})  # a form gets the pairing page, not JSON
        assert form.status_code == 401 and "Pair this phone" in form.text
        assert status(pedal)["signed_in"] is True  # nothing a stranger did signed it out
        # a cookie that is not a paired one is nobody's
        forged = httpx.Client(base_url=pedal.portal_url, cookies={"tb_owner": "0" * 64}, timeout=10)
        assert forged.post("signout", headers={"Accept": "application/json"}).status_code == 401
        # the flash keeps a digest of the owner's cookie, never the cookie
        cookie = owner_cookies(pedal)["tb_owner"]
        owners = json.loads(read(mount(str(flash)), "owners.json"))["owners"]
        assert len(owners) == 1 and cookie not in json.dumps(owners)
        console = "\n".join(pedal.console_lines())
        assert cookie not in console
    # after a restart the phone is still paired; "Unpair all phones" ends that
    with quiet_pedal(emulator, flash, lib) as pedal:
        pedal.start()
        owner = phone.owner_client(pedal.portal_url, httpx.Cookies({"tb_owner": cookie}))
        assert owner.get("status.json").json()["user"] in ("demo_player", None)
        assert owner.get("status.json").json()["paired"] is True
        assert owner.post("owners/forget", headers={"Accept": "application/json"}).status_code == 200
        assert owner.get("status.json").json()["paired"] is False


def test_pairing_by_footswitch_or_pin(emulator, lib, tmp_path):
    with quiet_pedal(emulator, tmp_path / "flash.img", lib) as pedal:
        pedal.start()
        # without the footswitch and without a PIN, Pair explains what to do
        reply = httpx.post(pedal.portal_url + "pair", data={"pin": ""})
        assert reply.status_code == 403 and "Hold the pedal's footswitch" in reply.text
        assert "set-cookie" not in reply.headers
        pedal.press_footswitch()
        pedal.wait_for_console("pairing is open", 5)
        paired = httpx.post(pedal.portal_url + "pair", data={"pin": ""})
        assert paired.status_code == 303
        header = paired.headers["set-cookie"]
        assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
        # one hold pairs one phone
        assert httpx.post(pedal.portal_url + "pair", data={"pin": ""}).status_code == 403

        # PINs: five wrong ones close PIN pairing for a minute and make a new PIN
        first_pin = pedal.pairing_pin
        wrong = "%06d" % ((int(first_pin) + 1) % 1000000)
        for _ in range(5):
            assert httpx.post(pedal.portal_url + "pair", data={"pin": wrong}).status_code == 403
        pedal.wait_for_console(lambda line: "PIN" in line and first_pin not in line and "type PIN" in line, 5)
        locked = httpx.post(pedal.portal_url + "pair", data={"pin": pedal.pairing_pin})
        assert locked.status_code == 403 and "wait a minute" in locked.text
        assert pedal.pairing_pin != first_pin


def test_host_and_origin_must_be_the_pedal(emulator, lib, tmp_path):
    with quiet_pedal(emulator, tmp_path / "flash.img", lib, TONEBRIDGE_ADDRESS="10.77.0.2") as pedal:
        pedal.start()
        owner = portal(pedal)
        # DNS rebinding: a page on evil.example whose name now points at the pedal
        for host in ("evil.example", "evil.example:80", "10.77.0.2.evil.example", "a b", "[::1"):
            assert owner.get("status.json", headers={"Host": host}).status_code in (400, 421), host
        for host in ("10.77.0.2", "10.77.0.2:80", "localhost", "127.0.0.1"):
            assert owner.get("status.json", headers={"Host": host}).status_code == 200, host
        for origin in ("http://evil.example", "null", "http://10.77.0.2.evil.example"):
            reply = owner.post("sync", headers={"Origin": origin, "Accept": "application/json"})
            assert reply.status_code == 403, origin
        assert owner.post("sync", headers={"Origin": "http://10.77.0.2", "Accept": "application/json"}
                          ).status_code == 401  # the pedal's own page: allowed (then: not signed in)


def test_hostile_connections_do_not_starve_or_kill_the_portal(emulator, lib, tmp_path):
    with quiet_pedal(emulator, tmp_path / "flash.img", lib) as pedal:
        pedal.start()
        owner = portal(pedal)
        baseline = owner.get("status.json").json()["heap"]["alloc"]
        host, port = address(pedal)
        # 48 connections that send half a request line and wait
        idle = []
        for _ in range(48):
            sock = socket.create_connection((host, port))
            sock.sendall(b"GET / HTTP/1.1\r\n")
            idle.append(sock)
        started = time.monotonic()
        assert owner.get("status.json").status_code == 200
        assert time.monotonic() - started < 2
        for sock in idle:
            sock.close()
        # one 400 KB line, 4,000 headers: refused before they reach the heap
        for head in (b"GET /" + b"a" * 400_000 + b" HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 4000 + b"\r\n"):
            sock = socket.create_connection((host, port), timeout=10)
            try:
                sock.sendall(head)
            except OSError:
                pass  # the pedal closed first
            try:
                assert sock.recv(64).startswith(b"HTTP/1.1 431")
            except ConnectionResetError:
                pass
            sock.close()

        def probe():
            assert owner.get("status.json", timeout=5).status_code == 200

        try:
            opened, slowest, probes = flood(host, port, seconds=8, rate=30, probe=probe)
        except Exception:
            print("CONSOLE", "\n".join(pedal.console_lines()[-15:]))
            raise
        assert opened >= 100 and probes >= 10
        assert slowest < 2.0, "a normal request took %.2f s during the flood" % slowest
        time.sleep(5)  # the last slow heads time out (4 s)
        after = owner.get("status.json").json()["heap"]["alloc"]
        assert after - baseline < 4096, (baseline, after)
        assert pedal.returncode is None
        pedal.wait_for_console("connections refused or timed out", 15)
