"""`tonebridge pedal wifi SSID`: the network saved in the simulated pedal's config.json
over the USB link (read back from its flash image), the pedal restarting into it when
asked (the simulator's restart is exit status 3), the password never printed nor logged,
and a bad name or password refused in one line, by the CLI and by the pedal itself."""

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from link_helpers import NO_API, open_link, pedal_env
from pedal_helpers import mount, read

from tonebridge.boards.flashimage import make_image
from tonebridge.cli import cli
from tonebridge.cli import pedal as pedal_cli
from tonebridge.cli.common import EXIT_PEDAL, EXIT_USAGE
from tonebridge.dev.simulator import SimulatedPedal
from tonecore import link
from tonecore.errors import PedalRefused

TONEBRIDGE = [sys.executable, "-m", "tonebridge"]
RESTART = 3  # firmware/simboard/boot.py: the status of a pedal that restarts itself
PASSWORD = "correct-horse-42"


def run_wifi(port, *args, password=None):
    return subprocess.run(TONEBRIDGE + ["pedal", "wifi"] + list(args) + ["--port", port], input=password,
                          capture_output=True, text=True, timeout=120)


def config_of(flash):
    return json.loads(read(mount(str(flash)), "config.json"))


def wait_for_exit(sim, timeout_s):
    deadline = time.monotonic() + timeout_s
    while sim.returncode is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return sim.returncode


def test_the_network_is_saved_on_the_pedal_which_restarts_into_it(lib, tmp_path):
    flash = tmp_path / "pedal.img"
    # settings already there stay: the API, the access point's own password, the join timeout
    make_image(str(flash), {"config.json": json.dumps({"api": "https://example.test/api/v1",
                                                      "wifi": {"ap_password": "ap-pass-123", "timeout_s": 5}}).encode()},
               block_count=1024)
    sim = SimulatedPedal(NO_API, str(flash), lib=lib, env=pedal_env())
    try:
        sim.start()
        done = run_wifi(sim.serial_path, "Home Net", "--password-stdin", password=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Saved the Wi-Fi network 'Home Net' on the pedal; it is restarting to join it: "
                                      "then open http://tonebridge"), done.stdout
        assert wait_for_exit(sim, 20) == RESTART, "the pedal did not restart"
        console = "\n".join(sim.console_lines())
    finally:
        sim.stop()
    assert "wifi: saved the network Home Net" in console and "pedal: restarting in 1 s: joining the Wi-Fi network " \
        "Home Net" in console, console[-2000:]
    config = config_of(flash)
    assert config["wifi"] == {"ssid": "Home Net", "password": PASSWORD, "ap_password": "ap-pass-123", "timeout_s": 5}
    assert config["api"] == "https://example.test/api/v1"
    for text in (done.stdout, done.stderr, console):
        assert PASSWORD not in text


def test_without_a_restart_the_pedal_keeps_running_and_an_open_network_has_no_password(lib, tmp_path):
    flash = tmp_path / "pedal.img"
    with SimulatedPedal(NO_API, str(flash), lib=lib, env=pedal_env()) as sim:
        sim.start()
        done = run_wifi(sim.serial_path, "  Cafe  ", "--password", "", "--no-restart", "--json")
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["ssid"] == "Cafe" and answer["restart"] is False and answer["url"].endswith(".local/")
        time.sleep(3)  # a restart would come 1.5 s after the reply
        assert sim.returncode is None
        # and it still answers on its link
        with open_link(sim.serial_path) as pedal:
            assert pedal.info["board"] == "unix_sim"
    assert config_of(flash)["wifi"] == {"ssid": "Cafe", "password": ""}


BAD_REQUESTS = [
    ({link.K_SSID: "x" * 33, link.K_PASSWORD: PASSWORD}, "name (SSID) is 1 to 32 bytes"),
    ({link.K_SSID: "\u00e9" * 17, link.K_PASSWORD: PASSWORD}, "name (SSID) is 1 to 32 bytes"),  # 34 bytes
    ({link.K_SSID: "   ", link.K_PASSWORD: PASSWORD}, "name (SSID) is 1 to 32 bytes"),
    ({link.K_SSID: 7, link.K_PASSWORD: PASSWORD}, "name (SSID) is 1 to 32 bytes"),
    ({link.K_PASSWORD: PASSWORD}, "name (SSID) is 1 to 32 bytes"),
    ({link.K_SSID: "Home", link.K_PASSWORD: "seven77"}, "8 to 63 characters"),
    ({link.K_SSID: "Home", link.K_PASSWORD: "p" * 64}, "8 to 63 characters"),
    ({link.K_SSID: "Home", link.K_PASSWORD: b"bytes-not-text"}, "8 to 63 characters"),
    ({link.K_SSID: "Ho\x1bme", link.K_PASSWORD: PASSWORD}, "control character"),
    ({link.K_SSID: "Home", link.K_PASSWORD: "pass\nword1"}, "control character"),
]


def test_the_pedal_refuses_a_bad_name_or_password_itself(lib, tmp_path):
    # raw requests, past the CLI's own checks: the pedal must not trust the host
    flash = tmp_path / "pedal.img"
    with SimulatedPedal(NO_API, str(flash), lib=lib, env=pedal_env()) as sim:
        sim.start()
        with open_link(sim.serial_path) as pedal:
            for fields, said in BAD_REQUESTS:
                with pytest.raises(PedalRefused) as refused:
                    pedal.request(link.WIFI, {**fields, link.K_RESTART: True})
                assert refused.value.code == link.E_BAD_REQUEST and said in str(refused.value), (fields, refused.value)
        time.sleep(2)
        assert sim.returncode is None  # refused: no restart
    assert "config.json" not in mount(str(flash)).listdir("/")  # nothing was written


@pytest.mark.parametrize("args, said", [
    (["x" * 33, "--password", PASSWORD], "a Wi-Fi network's name (SSID) is 1 to 32 bytes"),
    (["", "--password", PASSWORD], "a Wi-Fi network's name (SSID) is 1 to 32 bytes"),
    (["Home", "--password", "short"], "a Wi-Fi password is 8 to 63 characters (or none for an open network)"),
    (["Home", "--password", "tab\there-pass"], "the Wi-Fi name or password has a control character"),
    (["Home", "--password", PASSWORD, "--password-stdin"], "--password and --password-stdin exclude each other"),
    (["Home"], "no Wi-Fi password given: pipe it in with --password-stdin"),
])
def test_the_cli_refuses_a_bad_name_or_password_before_opening_a_port(monkeypatch, args, said):
    def no_port(*args, **kwargs):
        raise AssertionError("a port was opened")

    monkeypatch.setattr(pedal_cli, "connect", no_port)
    result = CliRunner().invoke(cli, ["pedal", "wifi"] + args + ["--port", "/dev/nonexistent"], input="")
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.startswith("tonebridge: error: " + said) and result.stderr.count("\n") == 1, result.stderr
    assert PASSWORD not in result.output


def test_a_pedal_whose_firmware_predates_the_command_is_told_apart(monkeypatch):
    class OldPedal:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def request(self, kind, fields):
            raise PedalRefused("the pedal refused: unknown message type %d" % kind, link.E_BAD_REQUEST)

    monkeypatch.setattr(pedal_cli, "connect", lambda port, baud: OldPedal())
    result = CliRunner().invoke(cli, ["pedal", "wifi", "Home", "--password-stdin", "--port", "x"], input=PASSWORD)
    assert result.exit_code == EXIT_PEDAL, result.output
    assert result.stderr == ("tonebridge: error: the pedal's firmware predates `pedal wifi`: deploy it again "
                             "(tonebridge firmware deploy) or use its Wi-Fi set-up page\n")


class FakeStore:
    def __init__(self):
        self.saved = []

    def info(self):
        return {"board": "fake", "free": 0, "firmware": "test"}

    def set_wifi(self, ssid, password, restart):
        self.saved.append((ssid, password, restart))
        return "tonebridge-ab12"


def test_a_repeated_request_is_answered_again_not_done_again():
    store = FakeStore()
    pedal = link.PedalEnd(store)
    pedal.receive(link.control(1, link.HELLO, {link.K_VERSION: link.VERSION, link.K_NONCE: 5}), 0)
    request = link.control(2, link.WIFI, {link.K_SSID: " Home ", link.K_PASSWORD: PASSWORD, link.K_RESTART: True})
    first = pedal.receive(request, 10)
    again = pedal.receive(request, 20)  # the host did not get the reply: same seq, sent again
    assert store.saved == [("Home", PASSWORD, True)]  # saved, and a restart scheduled, once
    assert first == again and PASSWORD.encode() not in first
    (reply,) = [link.parse_control(payload) for kind, seq, payload in link.Decoder(4096).feed(first)]
    assert reply == {link.K_TYPE: link.WIFI, link.K_SSID: "Home", link.K_RESTART: True,
                     link.K_HOSTNAME: "tonebridge-ab12"}


def test_the_prompt_hides_the_password_on_a_terminal(lib, tmp_path):
    import os
    import select

    flash = tmp_path / "pedal.img"
    with SimulatedPedal(NO_API, str(flash), lib=lib, env=pedal_env()) as sim:
        sim.start()
        master, slave = os.openpty()  # a terminal as a person has it: it echoes what is typed
        try:
            proc = subprocess.Popen(TONEBRIDGE + ["pedal", "wifi", "Home", "--no-restart", "--port", sim.serial_path],
                                    stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
            seen = b""
            deadline = time.monotonic() + 60
            while b"Password for Home (empty for an open network): " not in seen:
                assert time.monotonic() < deadline and proc.poll() is None, seen
                if select.select([master], [], [], 0.5)[0]:
                    seen += os.read(master, 1024)
            os.write(master, PASSWORD.encode() + b"\n")
            assert proc.wait(60) == 0, seen
            while select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 1024)
        finally:
            os.close(slave)
            os.close(master)
    assert b"Saved the Wi-Fi network 'Home' on the pedal; it joins it at its next start" in seen, seen
    assert PASSWORD.encode() not in seen  # not echoed, not printed
    assert config_of(flash)["wifi"] == {"ssid": "Home", "password": PASSWORD}
