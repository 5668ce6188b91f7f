"""The token store: mode 0600 from creation, atomic replacement, damaged and foreign files."""

import json
import os
import stat
import time

import pytest
from click.testing import CliRunner

from tonebridge import fileio
from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_SIGN_IN
from tonebridge.api.token_store import Profile, TokenStore
from tonecore.errors import SignInRequired
from tonecore.session import Tokens

API = "http://127.0.0.1:1/api/v1"


def tokens(refresh="R1"):
    return Tokens("ACCESS-SECRET", refresh, 3600, 10_000_000)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_session_file_is_0600_in_a_0700_directory(tmp_path):
    home = tmp_path / "home"
    store = TokenStore(str(home))
    store.save(API, tokens(), 1_000_000, 1_700_000_000)
    assert mode(store.path) == 0o600
    assert mode(home) == 0o700
    record = json.loads(open(store.path).read())
    assert record == {
        "api": API,
        "flow": "otp",
        "dialect": "v1",
        "tokens": {"access_token": "ACCESS-SECRET", "refresh_token": "R1", "expires_in": 3600,
                   "expires_at": 1_700_000_000 + 9000},
    }
    assert os.listdir(home) == ["session.json"]  # no temporary file left behind


def test_an_oauth_session_keeps_its_flow_client_and_dialect(tmp_path):
    store = TokenStore(str(tmp_path))
    store.profile = Profile("device", "t3k_pub_x", "current")
    store.save(API, tokens(), 1_000_000, 1_700_000_000)
    record = json.loads(open(store.path).read())
    assert (record["flow"], record["client_id"], record["dialect"]) == ("device", "t3k_pub_x", "current")
    again = TokenStore(str(tmp_path))
    again.load(API, 0, 1_700_000_000)
    assert (again.profile.flow, again.profile.client_id, again.profile.dialect) == ("device", "t3k_pub_x", "current")
    # an old session file (no profile) reads as the seed's OTP flow
    del record["dialect"], record["client_id"]
    record["flow"] = "otp"
    open(store.path, "w").write(json.dumps(record))
    old = TokenStore(str(tmp_path))
    old.load(API, 0, 1_700_000_000)
    assert (old.profile.flow, old.profile.dialect) == ("otp", "v1")


def test_the_file_is_private_before_any_secret_is_written(tmp_path, monkeypatch):
    """The temporary file already has mode 0600 when the tokens go into it (umask 0)."""
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(mode(src))
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", spy)
    old = os.umask(0)
    try:
        TokenStore(str(tmp_path)).save(API, tokens(), 0, 0)
    finally:
        os.umask(old)
    assert seen == [0o600]


def test_a_failed_write_leaves_the_old_session_intact(tmp_path, monkeypatch):
    store = TokenStore(str(tmp_path))
    store.save(API, tokens("OLD"), 0, 1_700_000_000)

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(OSError):
        store.save(API, tokens("NEW"), 0, 1_700_000_000)
    assert json.loads(open(store.path).read())["tokens"]["refresh_token"] == "OLD"
    assert os.listdir(tmp_path) == ["session.json"]


def test_load_round_trips_and_checks_the_api(tmp_path):
    store = TokenStore(str(tmp_path))
    store.save(API, tokens(), 1_000_000, 1_700_000_000)
    loaded = TokenStore(str(tmp_path)).load(API + "/", 5_000, 1_700_000_000)
    assert loaded.refresh_token == "R1"
    assert loaded.expires_ms == 5_000 + 9_000_000
    with pytest.raises(SignInRequired) as info:
        TokenStore(str(tmp_path)).load("https://www.tone3000.com/api/v1", 0, 0)
    assert "not signed in to https://www.tone3000.com/api/v1" in str(info.value)
    assert "the saved session is for " + API in str(info.value)


def test_delete_spares_tokens_another_process_refreshed(tmp_path):
    mine = TokenStore(str(tmp_path))
    mine.save(API, tokens("R1"), 0, 0)
    TokenStore(str(tmp_path)).save(API, tokens("R2"), 0, 0)  # another process rotated them
    assert mine.delete(API) is False
    assert os.path.exists(mine.path)
    assert TokenStore(str(tmp_path)).delete(API) is True
    assert not os.path.exists(mine.path)


@pytest.mark.parametrize(
    "content", [b"{not json", b"[]", b'{"api": "x"}', b'{"api": "%s", "tokens": {"access_token": 1}}' % API.encode()]
)
def test_a_damaged_session_file_is_one_line_suggesting_login(tmp_path, content):
    (tmp_path / "session.json").write_bytes(content)
    result = CliRunner().invoke(cli, ["--api", API, "whoami"], env={"TONEBRIDGE_HOME": str(tmp_path)})
    assert result.exit_code == EXIT_SIGN_IN
    path = tmp_path / "session.json"
    assert result.stderr == ("tonebridge: error: the saved session in %s is damaged; run `tonebridge login --api %s`\n"
                             % (path, API))  # the service asked for, not the default one


def test_logout_removes_the_session_and_is_idempotent(tmp_path):
    env = {"TONEBRIDGE_HOME": str(tmp_path)}
    TokenStore(str(tmp_path)).save(API, tokens(), 0, time.time())
    runner = CliRunner()
    other = runner.invoke(cli, ["logout", "--api", "http://127.0.0.1:2"], env=env)
    assert other.exit_code == EXIT_SIGN_IN and "the saved session is for " + API in other.stderr
    assert (tmp_path / "session.json").exists()
    done = runner.invoke(cli, ["logout", "--api", "http://127.0.0.1:1/"], env=env)
    assert done.exit_code == 0 and "Signed out of " + API in done.output
    assert not (tmp_path / "session.json").exists()
    again = runner.invoke(cli, ["logout"], env=env)
    assert again.exit_code == 0 and "Not signed in." in again.output
