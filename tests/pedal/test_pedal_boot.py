"""The board entry, pedal.main.boot(), under the MicroPython unix port: settings from
config.json on the flash (written on the host with littlefs-python, as a user would put
Wi-Fi credentials there), Wi-Fi through a stand-in `network` module, CA roots from the
flash's /ca folder."""

import json
import os
import re
import shutil

import httpx
import pytest
import trustme

from pedal_helpers import mount, portal, read

from tonebridge.boards.flashimage import make_image
from tonebridge.dev.simulator import SimError, SimulatedPedal, free_port, stage_firmware

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKES = os.path.join(ROOT, "tests", "pedal", "board_fakes")


def staged(tmp_path_factory, **fields):
    """The firmware staged for a unix_sim board with the stand-in `network` module and
    these board.py fields replaced ({NAME: python literal text})."""
    overlay = tmp_path_factory.mktemp("overlay")
    for name in os.listdir(FAKES):
        if name.endswith(".py"):
            shutil.copy(os.path.join(FAKES, name), overlay / name)
    with open(os.path.join(ROOT, "boards", "unix_sim", "board.py")) as f:
        board = f.read()
    for field, value in fields.items():
        board = re.sub(r"^%s = .*$" % field, "%s = %s" % (field, value), board, flags=re.M)
    (overlay / "boardinfo.py").write_text(board)
    folder = str(tmp_path_factory.mktemp("lib"))
    return stage_firmware("unix_sim", folder, overlay=str(overlay))


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return staged(tmp_path_factory, CA_FILES='("test-root.der", "missing.der")')


def flash_with(path, files):
    """A littlefs image made on the host holding `files` ({path: bytes})."""
    make_image(path, files, block_count=1024)


def boot(lib, flash, port):
    return SimulatedPedal("http://127.0.0.1:9/api/v1", str(flash), lib=lib, env={"TONEBRIDGE_BOOT": "board"},
                          portal_port=port)


def test_boot_joins_the_configured_wifi_and_loads_the_ca_roots(lib, tmp_path):
    der = trustme.CA().cert_pem.bytes()
    import ssl

    der = ssl.PEM_cert_to_DER_cert(der.decode())
    port = free_port()
    config = (b'{"wifi": {"ssid": "HomeNet", "password": "secret-home"}, "api": "http://127.0.0.1:9/api/v1", "port": %d, '
              b'"client_id": "t3k_pub_mine"}' % port)
    flash = tmp_path / "flash.img"
    flash_with(str(flash), {"config.json": config, "ca/test-root.der": der})
    with boot(lib, flash, port) as pedal:
        pedal.start()
        console = "\n".join(pedal.console_lines())
        assert "wifi: joined HomeNet as 10.0.0.7" in console
        assert "tls: CA file /flash/ca/missing.der is missing" in console  # named, not fatal
        status = portal(pedal).get(pedal.portal_url + "status.json", timeout=10).json()
        assert status["board"] == "unix_sim" and status["signed_in"] is False
        # a Host that is not the pedal's (DNS rebinding) is refused outright
        assert portal(pedal).get(pedal.portal_url + "signin", headers={"Host": "evil.example"}).status_code == 421
        # the sign-in (the LAN relay) brings the phone back to the pedal's own station
        # address, whatever name the phone reached it by
        location = portal(pedal).get(pedal.portal_url + "signin", headers={"Host": "localhost"}).headers["location"]
        assert location.startswith("http://127.0.0.1:9/api/v1/oauth/authorize?client_id=t3k_pub_mine&")
        assert "redirect_uri=http%%3A%%2F%%2F10.0.0.7%%3A%d%%2Fcallback&" % port in location


def test_without_wifi_the_pedal_opens_its_own_access_point(lib, tmp_path):
    flash = tmp_path / "flash.img"
    port = free_port()
    config = b'{"wifi": {"ssid": "HomeNet", "password": "wrong", "timeout_s": 0.5}, "port": %d}' % port
    flash_with(str(flash), {"config.json": config})
    with boot(lib, flash, port) as pedal:
        pedal.start()
        console = "\n".join(pedal.console_lines())
        assert "wifi: could not join HomeNet" in console
        assert "fake network: access point tonebridge, WPA2" in console  # never an open network
        shown = re.search(r"join 'tonebridge' \(password ([a-z2-9]{12})\) and open http://192\.168\.4\.1/", console)
        assert shown, console
    # the password is the pedal's own, kept across starts (the phone remembers the network)
    assert json.loads(read(mount(str(flash)), "wifi_ap.json"))["password"] == shown.group(1)
    with boot(lib, flash, port) as pedal:
        pedal.start()
        assert "(password %s)" % shown.group(1) in "\n".join(pedal.console_lines())


def test_the_wifi_page_moves_the_pedal_from_its_access_point_to_the_home_network(lib, tmp_path):
    flash = tmp_path / "flash.img"
    port = free_port()
    flash_with(str(flash), {"config.json": b'{"port": %d, "wifi": {"timeout_s": 0.5}}' % port})
    with boot(lib, flash, port) as pedal:
        pedal.start()
        assert "join 'tonebridge' (password" in "\n".join(pedal.console_lines())
        owner = portal(pedal)
        page = owner.get("wifi").text
        assert page.index("HomeNet (strong, locked)") < page.index("Cafe (weak, open)")  # strongest first, once
        assert page.count(">HomeNet (") == 1
        short = owner.post("wifi", data={"ssid": "HomeNet", "password": "short"})
        assert short.status_code == 400 and "8 to 63 characters" in short.text
        assert httpx.post(pedal.portal_url + "wifi", data={"ssid": "Evil", "password": "12345678"}).status_code == 401
        saved = owner.post("wifi", data={"ssid": "HomeNet", "password": "secret-home"})
        assert saved.status_code == 200 and "Joining HomeNet" in saved.text and "tonebridge.local" in saved.text
        with pytest.raises(SimError, match="status 3"):  # it restarts (the simulator's pedal ends with RESTART)
            pedal.wait(10)
        assert "secret-home" not in "\n".join(pedal.console_lines())  # never on the console
    config = json.loads(read(mount(str(flash)), "config.json"))
    assert config["wifi"]["ssid"] == "HomeNet" and config["wifi"]["password"] == "secret-home"
    assert config["port"] == port  # the rest of the settings stay
    with boot(lib, flash, port) as pedal:
        pedal.start()
        console = "\n".join(pedal.console_lines())
        assert "wifi: joined HomeNet as 10.0.0.7; the page: http://10.0.0.7/ or http://tonebridge.local/" in console
        assert "fake network: access point" not in console  # set-up is over: no access point


def boot_board(tmp_path_factory, tmp_path, serial):
    """A started pedal (board entry) whose board.py says SERIAL = `serial`."""
    lib = staged(tmp_path_factory, SERIAL=serial)
    port = free_port()
    flash = tmp_path / "flash.img"
    flash_with(str(flash), {"config.json": b'{"port": %d}' % port})
    return boot(lib, flash, port).start()


@pytest.mark.parametrize("serial, link_line", [
    ('"usb-cdc"', "usb: link ready (frames up to 4112 bytes, window 16384, receive buffer unlimited)"),
    ('"uart"', "usb: link ready (frames up to 1040 bytes, window 4096, receive buffer 240)"),
])
def test_the_link_runs_with_the_profile_of_the_boards_console(tmp_path_factory, tmp_path, serial, link_line):
    """The board's SERIAL, as boardinfo on the pedal, picks the link settings (a native
    USB board once silently got the UART's)."""
    with boot_board(tmp_path_factory, tmp_path, serial) as pedal:
        pedal.wait_for_console(lambda line: "usb: link ready" in line, 10)
        assert link_line in "\n".join(pedal.console_lines())


def test_a_console_kind_with_no_link_profile_is_refused_and_the_pedal_still_serves(tmp_path_factory, tmp_path):
    # "usb": the name the firmware once used for native USB
    with boot_board(tmp_path_factory, tmp_path, '"usb"') as pedal:
        pedal.wait_for_console(lambda line: "usb: no USB link" in line, 10)
        console = "\n".join(pedal.console_lines())
        assert "usb: no USB link on this console: unknown serial console kind 'usb'" in console
        assert "usb: link ready" not in console
        status = portal(pedal).get(pedal.portal_url + "status.json", timeout=10).json()
        assert status["board"] == "unix_sim" and pedal.returncode is None  # no reboot loop: it runs on
