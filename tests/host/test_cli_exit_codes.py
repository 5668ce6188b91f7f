"""One table of exit codes (tonebridge.cli.common, README.md "Exit codes"), applied the
same way by every command, and messages that name what the user gave, not internals."""

import os
import re
import socket
import time

import pytest
from click.testing import CliRunner

from tonebridge.api.token_store import TokenStore
from tonebridge.cli import cli, common
from tonebridge.cli.common import EXIT_LOCAL, EXIT_PEDAL, EXIT_USAGE
from tonecore import link
from tonecore.errors import PedalRefused
from tonecore.session import Tokens

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def invoke(tmp_path, *args, env=None):
    full = {"TONEBRIDGE_HOME": str(tmp_path / "home"), "TONEBRIDGE_API": "http://127.0.0.1:1",
            "TONEBRIDGE_PORT": None}
    full.update(env or {})
    return CliRunner().invoke(cli, list(args), env=full)


def one_line(result, code, *fragments):
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stderr.startswith("tonebridge: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def test_the_readme_lists_the_same_table():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.M)}
    table = {value for name, value in vars(common).items() if name.startswith("EXIT_")}
    assert listed == table


def test_favorited_and_created_exclude_each_other(tmp_path):
    for args in (["tones", "--favorited", "--created"], ["tones", "--created", "--favorited"]):
        one_line(invoke(tmp_path, *args), EXIT_USAGE, "--favorited and --created exclude each other",
                 "tonebridge tones --help")


@pytest.mark.parametrize("args", [["pedal", "push"], ["pedal", "rm"], ["firmware", "build"], ["sim", "--heap"],
                                  ["tones", "--json", "x"], ["download", "0"], ["emulator", "--port", "x"],
                                  ["pedal", "info", "--baud", "10"]])
def test_every_usage_error_of_click_is_2(tmp_path, args):
    one_line(invoke(tmp_path, *args), EXIT_USAGE)


@pytest.mark.parametrize("args", [["pedal", "info"], ["pedal", "ls"], ["pedal", "rm", "5"], ["pedal", "activate", "x"],
                                  ["pedal", "push", "FILE"], ["pedal", "sync"]])
def test_a_port_that_does_not_exist_is_2_in_every_pedal_command(tmp_path, args):
    model = tmp_path / "m.nam"
    model.write_bytes(b'{"version": "1", "architecture": "A", "config": {}, "weights": []}')  # checked before the port
    args = [str(model) if arg == "FILE" else arg for arg in args]
    nowhere = str(tmp_path / "ttyNOPE")
    one_line(invoke(tmp_path, *args, "--port", nowhere), EXIT_USAGE, "no serial port " + nowhere)


class FakePedal:
    """A pedal with model 901 "Lead"; it refuses an unknown id as the firmware does."""

    class Model:
        def __init__(self, model_id, name):
            self.id, self.name = model_id, name

    def __init__(self):
        self.deleted = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def models(self):
        return [self.Model(901, "Lead")], 901

    def delete(self, model_id):
        if model_id != 901:
            raise PedalRefused("model %d is not installed" % model_id, link.E_NOT_FOUND)
        self.deleted.append(model_id)


@pytest.mark.parametrize("model", ["4242", "Rhythm"])
def test_an_unknown_model_is_the_same_code_by_id_or_by_name(tmp_path, monkeypatch, model):
    from tonebridge.cli import pedal as pedal_cli

    pedal = FakePedal()
    monkeypatch.setattr(pedal_cli, "connect", lambda port, baud: pedal)
    one_line(invoke(tmp_path, "pedal", "rm", model, "--port", "/dev/null"), EXIT_PEDAL)
    assert invoke(tmp_path, "pedal", "rm", "Lead", "--port", "/dev/null").exit_code == 0
    assert pedal.deleted == [901]


@pytest.fixture
def busy_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        yield server.getsockname()[1]


def test_a_busy_portal_port_is_named_with_its_option(tmp_path, busy_port):
    message = one_line(invoke(tmp_path, "sim", "--portal-port", str(busy_port), "--flash", str(tmp_path / "f.img")),
                       EXIT_USAGE)
    assert message == "tonebridge: error: port %d is in use (choose another with --portal-port)\n" % busy_port
    assert not (tmp_path / "f.img").exists()  # refused before anything started


def test_a_busy_emulator_port_is_named_with_its_option(tmp_path, busy_port):
    pytest.importorskip("tonebridge.dev.emulator.server")
    one_line(invoke(tmp_path, "emulator", "--port", str(busy_port)), EXIT_USAGE,
             "port %d is in use (choose another with --port)" % busy_port)
    one_line(invoke(tmp_path, "emulator", "--storage-port", str(busy_port)), EXIT_USAGE,
             "port %d is in use (choose another with --storage-port)" % busy_port)


def test_tls_files_that_are_not_pem_are_named(tmp_path, monkeypatch):
    pytest.importorskip("tonebridge.dev.emulator.server")
    trustme = pytest.importorskip("trustme")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes\n")
    message = one_line(invoke(tmp_path, "emulator", "--tls-cert", "notes.txt"), EXIT_USAGE,
                       "notes.txt is not a PEM certificate/key")
    assert "SSL" not in message and "_ssl.c" not in message
    ca = trustme.CA()
    one, other = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    one.cert_chain_pems[0].write_to_path("cert.pem")
    other.private_key_pem.write_to_path("other-key.pem")
    one_line(invoke(tmp_path, "emulator", "--tls-cert", "cert.pem"), EXIT_USAGE,
             "cert.pem holds no PEM private key", "--tls-key")
    one_line(invoke(tmp_path, "emulator", "--tls-cert", "cert.pem", "--tls-key", "notes.txt"), EXIT_USAGE,
             "notes.txt is not a PEM private key")
    one_line(invoke(tmp_path, "emulator", "--tls-cert", "cert.pem", "--tls-key", "other-key.pem"), EXIT_USAGE,
             "the key in other-key.pem is not the key of the certificate in cert.pem")


def test_sim_refuses_a_ca_that_is_not_a_der_certificate(tmp_path, monkeypatch):
    from tonebridge.cli.dev import check_der_certificate

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes\n")
    one_line(invoke(tmp_path, "sim", "--ca", "notes.txt", "--flash", str(tmp_path / "f.img")), EXIT_USAGE,
             "notes.txt is not a DER CA certificate (--ca)")
    (tmp_path / "root.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    one_line(invoke(tmp_path, "sim", "--ca", "root.pem", "--flash", str(tmp_path / "f.img")), EXIT_USAGE,
             "root.pem is a PEM certificate; the pedal reads DER", "openssl x509 -in root.pem -outform der")
    assert not (tmp_path / "f.img").exists()
    shipped = os.path.join(ROOT, "boards", "esp32_generic", "ca")
    for name in os.listdir(shipped):  # the roots a board trusts pass
        check_der_certificate(os.path.join(shipped, name))


def test_sim_with_an_unknown_board_lists_the_boards_and_no_path(tmp_path):
    message = one_line(invoke(tmp_path, "sim", "--board", "nosuch", "--flash", str(tmp_path / "f.img")), EXIT_USAGE,
                       "unknown board 'nosuch'", "unix_sim", "esp32_generic")
    assert os.sep not in message.replace("f.img", "")


def test_download_to_a_place_that_cannot_be_written_names_the_destination(tmp_path):
    server = pytest.importorskip("tonebridge.dev.emulator.server")
    from signin_helpers import sign_in_home

    with server.EmulatorServer() as emulator:
        home = tmp_path / "home"
        sign_in_home(emulator.base_url, home)
        result = invoke(tmp_path, "download", "1008", "--tone", "3", "-o", "/proc/foo.nam",
                        env={"TONEBRIDGE_API": emulator.base_url})
    message = one_line(result, EXIT_LOCAL, "cannot save /proc/foo.nam: ")
    assert ".part" not in message


def test_sign_in_errors_name_the_service_of_the_saved_session(tmp_path):
    store = TokenStore(str(tmp_path / "home"))
    now_ms = int(time.monotonic() * 1000)
    store.save("http://127.0.0.1:7/api/v1", Tokens("A", "R", 3600, now_ms + 3600000), now_ms, time.time())
    for command in (["whoami"], ["tones"], ["logout"]):
        message = one_line(invoke(tmp_path, *command, env={"TONEBRIDGE_API": None}), common.EXIT_SIGN_IN)
        assert "http://127.0.0.1:7/api/v1" in message
        assert "login --api https://www.tone3000.com" not in message
