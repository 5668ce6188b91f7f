"""The CLI end to end against the real emulator over real sockets."""

import json
import os
import stat
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner
from signin_helpers import (
    api_of,
    browser_sign_in,
    configure,
    model_info,
    redirect_location,
    request_log,
    sign_in_home,
)

from tonebridge.api import signin as login_module
from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_API, EXIT_LOCAL, EXIT_SIGN_IN
from tonebridge.api.signin import PASTE_REDIRECT_OTP
from tonebridge.dev import phone
from tonebridge.dev.emulator.oauth import DEMO_CLIENT_ID
from tonebridge.api.token_store import TokenStore

server_module = pytest.importorskip("tonebridge.dev.emulator.server")

DEMO_FAVORITES = [3, 8, 5, 10, 4, 11, 12, 6, 16, 7, 13, 17, 14, 18]  # see emulator/catalogue.py
DEMO_CREATED = [2, 9, 15, 22, 28]


@pytest.fixture(scope="module")
def emulator():
    with server_module.EmulatorServer() as server:
        yield server


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


class Cli:
    """Runs `tonebridge` in-process with a private home; keeps every output for leak checks."""

    def __init__(self, emulator, home):
        self.env = {"TONEBRIDGE_HOME": str(home), "TONEBRIDGE_API": emulator.base_url,
                    "TONEBRIDGE_CLIENT_ID": DEMO_CLIENT_ID}
        self.outputs = []

    def __call__(self, *args, **kwargs):
        result = CliRunner().invoke(cli, list(args), env=self.env, **kwargs)
        self.outputs.append(result.output + result.stderr)
        assert "Traceback" not in result.output
        return result

    def json(self, *args):
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def run(emulator, home):
    return Cli(emulator, home)


@pytest.fixture
def signed_in(emulator, home, run):
    sign_in_home(emulator.base_url, home)
    return run


def stored_secrets(home):
    record = json.loads((home / "session.json").read_text())
    return [record["tokens"]["access_token"], record["tokens"]["refresh_token"]]


@pytest.mark.parametrize("mode", ["pkce", "otp"])
def test_login_through_the_loopback_listener(emulator, home, run, monkeypatch, mode):
    pages = []

    def browser(url):  # the user's browser: signs in, lands on the CLI's listener
        thread = threading.Thread(target=lambda: pages.append(browser_sign_in(url, emulator.base_url)))
        thread.start()
        pages.append(thread)
        return True

    monkeypatch.setattr(login_module.webbrowser, "open", browser)
    result = run("login", "--timeout", "20", *(("--otp",) if mode == "otp" else ()))
    pages[0].join(20)
    assert result.exit_code == 0, result.output
    assert "Opened your browser." in result.output
    assert result.output.strip().endswith("Signed in as %s" % run.json("whoami")["username"])
    landed = pages[1]
    assert landed.status_code == 200 and "You're signed in" in landed.text
    assert landed.url.host == "127.0.0.1"
    assert stat.S_IMODE(os.stat(home / "session.json").st_mode) == 0o600
    record = json.loads((home / "session.json").read_text())
    assert record["api"] == api_of(emulator.base_url) and record["flow"] == mode
    assert record.get("client_id") == (DEMO_CLIENT_ID if mode == "pkce" else None)
    assert record["dialect"] == ("current" if mode == "pkce" else "v1")
    assert record["user"]["username"] == "demo_player"  # saved at sign-in: `whoami` reads it offline
    for secret in stored_secrets(home):
        assert all(secret not in text for text in run.outputs)
        assert secret not in landed.text


def test_an_oauth_session_refreshes_through_the_token_endpoint_and_speaks_todays_dialect(
        emulator, home, run, monkeypatch):
    monkeypatch.setattr(login_module.webbrowser, "open", lambda url: threading.Thread(
        target=browser_sign_in, args=(url, emulator.base_url)).start() or True)
    assert run("login", "--timeout", "20").exit_code == 0
    before = stored_secrets(home)
    configure(emulator.base_url, clock_offset=3700)  # the access token has expired: a 401, then a refresh
    try:
        assert run("tones", "--favorited").exit_code == 0
    finally:
        configure(emulator.base_url, clock_offset=0)
    log = request_log(emulator.base_url)
    assert [e for e in log if e["path"] == "/api/v1/oauth/token"][-1]["status"] == 200
    assert not [e for e in log if e["path"] == "/api/v1/auth/session/refresh"]
    listing = [e for e in log if e["path"] == "/api/v1/tones/favorited"][-1]
    assert "page_size=100" in listing["query"] and "deprecations" not in listing
    after = stored_secrets(home)
    assert after[1] != before[1]  # the rotated refresh token was stored


def cli_process(emulator, home, *args):
    env = dict(os.environ, TONEBRIDGE_HOME=str(home), TONEBRIDGE_API=emulator.base_url,
               TONEBRIDGE_CLIENT_ID=DEMO_CLIENT_ID)
    return subprocess.Popen([sys.executable, "-m", "tonebridge", "login", *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def line_with(proc, text):
    for line in proc.stdout:
        if text in line:
            return line.strip()
    raise AssertionError("no line with %r; stderr: %s" % (text, proc.stderr.read()))


def test_login_in_a_subprocess_prints_the_url_and_waits(emulator, home):
    proc = cli_process(emulator, home, "--no-browser", "--timeout", "30")
    try:
        url = line_with(proc, api_of(emulator.base_url) + "/oauth/authorize?")
        assert "code_challenge_method=S256" in url and "state=" in url
        landed = browser_sign_in(url, emulator.base_url)
        rest = proc.stdout.read()
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        proc.kill()
    assert landed.status_code == 200
    assert "Signed in as " in rest
    assert proc.stderr.read() == ""


def test_login_by_pasting_the_oauth_address(emulator, home, run):
    proc = cli_process(emulator, home, "--paste", "--no-qr")
    try:
        url = line_with(proc, "/oauth/authorize?")
        leaving = browser_sign_in(url, emulator.base_url, follow_to_callback=False)
        location = leaving.headers["location"]
        assert location.startswith("http://127.0.0.1:1/tonebridge-callback?code=")
        out, err = proc.communicate(location + "\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Signed in as demo_player" in out and err == ""
    code = location.split("code=", 1)[1].split("&")[0]
    assert code not in out


def test_login_with_the_device_grant(emulator, home, run):
    configure(emulator.base_url, device_interval=1)  # poll every second, not every five
    proc = cli_process(emulator, home, "--device", "--qr")
    try:
        where = line_with(proc, "To sign in, open ")
        code = line_with(proc, "enter the code:").rsplit(" ", 1)[1]
        assert where.split("open ", 1)[1].startswith(emulator.base_url + "/activate")
        done = phone.activate(emulator.base_url + "/activate", code, "demo@example.com",
                              phone.outbox_code(emulator.base_url, "demo@example.com"))
        assert "Device connected" in done.text
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        configure(emulator.base_url, device_interval=5)
    assert proc.returncode == 0, err
    assert "\u2580" in out or "\u2584" in out or "\u2588" in out  # the QR code of the activation address
    assert "Signed in as demo_player" in out
    record = json.loads((home / "session.json").read_text())
    assert record["flow"] == "device" and record["client_id"] == DEMO_CLIENT_ID
    assert run.json("whoami")["username"] == "demo_player"
    for secret in stored_secrets(home):
        assert secret not in out + err


def test_login_with_a_denied_device_code_stores_nothing(emulator, home):
    configure(emulator.base_url, device_interval=1)
    proc = cli_process(emulator, home, "--device", "--no-qr")
    try:
        code = line_with(proc, "enter the code:").rsplit(" ", 1)[1]
        phone.activate(emulator.base_url + "/activate", code, "demo@example.com",
                       phone.outbox_code(emulator.base_url, "demo@example.com"), consent="deny")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        configure(emulator.base_url, device_interval=5)
    assert proc.returncode == EXIT_SIGN_IN
    assert err == "tonebridge: error: sign-in was declined (access denied)\n"
    assert not (home / "session.json").exists()


def test_login_by_pasting_the_redirected_address(emulator, home, run):
    location = redirect_location(emulator.base_url, PASTE_REDIRECT_OTP)
    assert location.startswith(PASTE_REDIRECT_OTP + "?") and "api_key=" in location
    result = run("login", "--otp", "--paste", input=location + "\n")
    assert result.exit_code == 0, result.output
    assert "redirect_url=http%3A%2F%2Ftonebridge-callback.invalid%2F" in result.output
    assert "Signed in as " in result.output
    key = location.split("api_key=", 1)[1].split("&")[0]
    assert key not in result.output
    # the key is single-use: pasting it again is refused, and the session stays
    again = run("login", "--otp", "--paste", input=key + "\n")
    assert again.exit_code == EXIT_SIGN_IN
    assert again.stderr.startswith("tonebridge: error: TONE3000 refused the sign-in")
    assert (home / "session.json").exists()


def test_whoami_tones_models_and_download(signed_in, home, emulator, tmp_path):
    run = signed_in
    me = run.json("whoami")
    assert set(me) == {"avatar_url", "bio", "created_at", "id", "links", "updated_at", "url", "username"}
    assert me["username"] == "demo_player"
    text = run("whoami")
    assert text.exit_code == 0 and text.output.splitlines()[0] == "demo_player"

    favorited = run.json("tones")
    assert favorited == run.json("tones", "--favorited")
    assert [t["id"] for t in favorited] == DEMO_FAVORITES  # every page, in the service's order
    assert sorted(t["id"] for t in run.json("tones", "--created")) == DEMO_CREATED
    assert list(favorited[0]) == sorted(favorited[0])
    table = run("tones")
    assert table.exit_code == 0 and "platform" in table.output
    assert all(str(tone_id) in table.output for tone_id in DEMO_FAVORITES)

    tone = favorited[0]
    models = run.json("models", str(tone["id"]))
    assert len(models) == tone["models_count"] > 0
    assert list(models[0]) == sorted(models[0])
    listing = run("models", str(tone["id"]))
    assert all(m["filename"] in listing.output for m in models)

    model = models[0]
    out = tmp_path / "models"
    result = run("download", str(model["id"]), "-o", str(out) + "/")
    assert result.exit_code == 0, result.output
    path = out / model["filename"]
    info = model_info(emulator.base_url, model["id"])
    assert path.stat().st_size == info["size"]
    assert "sha256 " + info["sha256"] in result.output and str(path) in result.output
    assert sorted(os.listdir(out)) == [model["filename"]]  # no .part, no sidecar

    # again: nothing to replace; a different file in the way needs --force
    again = run.json("download", str(model["id"]), "-o", str(path))
    assert again["unchanged"] is True and again["sha256"] == info["sha256"]
    path.write_bytes(b"{}")
    conflict = run("download", str(model["id"]), "-o", str(path))
    assert conflict.exit_code == EXIT_LOCAL and "--force" in conflict.stderr
    assert path.read_bytes() == b"{}"  # never overwritten without --force
    forced = run.json("download", str(model["id"]), "-o", str(path), "--force")
    # the verified .part from the refused run is reused: nothing is downloaded again
    assert forced["sha256"] == info["sha256"] and forced["resumed_from"] == info["size"]
    assert sorted(os.listdir(out)) == [model["filename"]]
    assert path.stat().st_size == info["size"]

    for secret in stored_secrets(home):
        assert all(secret not in text for text in run.outputs)


def test_download_finds_the_model_once_then_uses_the_index(signed_in, emulator, tmp_path):
    run = signed_in
    tone = run.json("tones")[2]
    model = run.json("models", str(tone["id"]))[-1]
    (tmp_path / "home" / "model-index.json").unlink()

    def lookups_during(*args):
        before = len(request_log(emulator.base_url))
        record = run.json(*args)
        paths = [e["path"] for e in request_log(emulator.base_url)[before:]]
        return record, [p for p in paths if "/download/" not in p]

    first, walked = lookups_during("download", str(model["id"]), "-o", str(tmp_path / "a") + "/")
    assert first["tone_id"] == tone["id"]
    # the favorites, then the models of each favorite up to the one holding the model
    assert walked == ["/api/v1/tones/favorited"] + ["/api/v1/models"] * 3
    second, walked = lookups_during("download", str(model["id"]), "-o", str(tmp_path / "b") + "/")
    assert walked == []
    assert second["sha256"] == first["sha256"]


def test_a_stale_index_entry_is_looked_up_again(signed_in, emulator, tmp_path, home):
    run = signed_in
    model = run.json("models", "3")[0]
    index = json.loads((home / "model-index.json").read_text())
    entry = index["apis"][api_of(emulator.base_url)][str(model["id"])]
    assert entry["url"] == model["model_url"]
    entry["url"] = model["model_url"].replace(model["filename"], "gone.nam")  # moved on the service
    (home / "model-index.json").write_text(json.dumps(index))
    result = run.json("download", str(model["id"]), "-o", str(tmp_path / "out") + "/")
    assert result["sha256"] == model_info(emulator.base_url, model["id"])["sha256"]
    assert os.listdir(tmp_path / "out") == [model["filename"]]  # nothing left of the failed try
    index = json.loads((home / "model-index.json").read_text())
    assert index["apis"][api_of(emulator.base_url)][str(model["id"])]["url"] == model["model_url"]


def test_forbidden_and_missing_models(signed_in, emulator, tmp_path):
    run = signed_in
    # tone 1 is public but neither ours nor favorited: its models are listed, not downloadable
    model = run.json("models", "1")[0]
    result = run("download", str(model["id"]), "--tone", "1", "-o", str(tmp_path) + "/")
    assert result.exit_code == EXIT_API
    assert result.stderr.startswith("tonebridge: error: ") and result.stderr.count("\n") == 1
    assert "access denied (HTTP 403)" in result.stderr
    assert os.listdir(tmp_path) == ["home"]  # no empty .part left behind

    private = run("models", "33")  # a private tone of another user
    assert private.exit_code == EXIT_API and "not found (HTTP 404)" in private.stderr
    nowhere = run("download", "999999", "-o", str(tmp_path) + "/")
    assert nowhere.exit_code == EXIT_API
    assert "model 999999 is not among the models of your favorited or created tones" in nowhere.stderr


def test_a_refused_refresh_asks_to_sign_in_again(signed_in, home, emulator):
    run = signed_in
    record = json.loads((home / "session.json").read_text())
    record["tokens"].update(refresh_token="revoked", expires_at=0)
    (home / "session.json").write_text(json.dumps(record))
    result = run("whoami")
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == (
        "tonebridge: error: the TONE3000 session has expired; sign in again with `tonebridge login --api %s`\n"
        % api_of(emulator.base_url))
    assert not (home / "session.json").exists()


def test_not_signed_in_and_foreign_session(emulator, home, run):
    result = run("whoami")
    assert result.exit_code == EXIT_SIGN_IN and "not signed in to " + api_of(emulator.base_url) in result.stderr
    sign_in_home(emulator.base_url, home)
    other = run("whoami", "--api", "http://127.0.0.1:1")
    assert other.exit_code == EXIT_SIGN_IN
    assert "the saved session is for " + api_of(emulator.base_url) in other.stderr
    assert "add `--api %s`" % api_of(emulator.base_url) in other.stderr  # the service you did sign in to
    assert other.stderr.count("\n") == 1
    assert TokenStore(str(home)).stored_api() == api_of(emulator.base_url)
