"""The board entry, pedal.main.boot(), under the MicroPython unix port: settings from
config.json on the flash (written on the host with littlefs-python, as a user would put
Wi-Fi credentials there), Wi-Fi through a stand-in `network` module, CA roots from the
flash's /ca folder."""

import os
import re
import shutil

import httpx
import pytest
import trustme

from tonebridge.boards.flashimage import make_image
from tonebridge.dev.simulator import SimulatedPedal, free_port, stage_firmware

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKES = os.path.join(ROOT, "tests", "pedal", "board_fakes")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    overlay = tmp_path_factory.mktemp("overlay")
    for name in os.listdir(FAKES):
        if name.endswith(".py"):
            shutil.copy(os.path.join(FAKES, name), overlay / name)
    with open(os.path.join(ROOT, "boards", "unix_sim", "board.py")) as f:
        board = f.read()
    board = re.sub(r"^CA_FILES = .*$", 'CA_FILES = ("test-root.der", "missing.der")', board, flags=re.M)
    (overlay / "boardinfo.py").write_text(board)
    folder = str(tmp_path_factory.mktemp("lib"))
    return stage_firmware("unix_sim", folder, overlay=str(overlay))


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
    config = b'{"wifi": {"ssid": "HomeNet", "password": "secret"}, "api": "http://127.0.0.1:9/api/v1", "port": %d}' % port
    flash = tmp_path / "flash.img"
    flash_with(str(flash), {"config.json": config, "ca/test-root.der": der})
    with boot(lib, flash, port) as pedal:
        pedal.start()
        console = "\n".join(pedal.console_lines())
        assert "wifi: joined HomeNet as 10.0.0.7" in console
        assert "tls: CA file /flash/ca/missing.der is missing" in console  # named, not fatal
        status = httpx.get(pedal.portal_url + "status.json", timeout=10).json()
        assert status["board"] == "unix_sim" and status["signed_in"] is False
        # the sign-in link sends the phone back to the address the phone used
        location = httpx.get(pedal.portal_url + "signin", timeout=10).headers["location"]
        assert location.startswith("http://127.0.0.1:9/api/v1/auth?")


def test_without_wifi_the_pedal_opens_its_own_access_point(lib, tmp_path):
    flash = tmp_path / "flash.img"
    port = free_port()
    config = b'{"wifi": {"ssid": "HomeNet", "password": "wrong", "timeout_s": 0.5}, "port": %d}' % port
    flash_with(str(flash), {"config.json": config})
    with boot(lib, flash, port) as pedal:
        pedal.start()
        console = "\n".join(pedal.console_lines())
        assert "wifi: could not join HomeNet" in console
        assert "join 'tonebridge-unix_sim' and open http://192.168.4.1/" in console
