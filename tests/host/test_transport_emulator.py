"""HttpxDriver + the core's session policy against the real emulator: refresh, rotation,
single refresh under concurrency, 429 pacing, redirects without credentials."""

import json
import sys
import threading
import time

import httpx
import pytest
from signin_helpers import api_of, configure, request_log, sign_in_home

from tonebridge.api.token_store import TokenStore
from tonebridge.api.transport import Connection
from tonecore.errors import SignInRequired
from tonecore.records import Pager

server_module = pytest.importorskip("tonebridge.dev.emulator.server")

REFRESH_PATH = "/api/v1/auth/session/refresh"


@pytest.fixture
def emulator():
    with server_module.EmulatorServer() as server:
        yield server


def refreshes(base_url, since=0):
    return [e for e in request_log(base_url)[since:] if e.get("path") == REFRESH_PATH]


def expire_stored_tokens(home):
    """Make the saved access token look expired to the client (the server still takes it)."""
    path = home / "session.json"
    record = json.loads(path.read_text())
    record["tokens"]["expires_at"] = int(time.time()) - 10
    path.write_text(json.dumps(record))


def connect(emulator, home, **kwargs):
    return Connection(api_of(emulator.base_url), TokenStore(str(home)), **kwargs)


@pytest.fixture
def eager_thread_switching():
    """Switch threads as often as CPython allows, so that races show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_twenty_threads_with_an_expired_token_refresh_once(emulator, tmp_path, eager_thread_switching):
    sign_in_home(emulator.base_url, tmp_path)
    expire_stored_tokens(tmp_path)
    before = len(request_log(emulator.base_url))
    with connect(emulator, tmp_path) as conn:
        for burst in range(1, 4):  # three bursts: a race has three chances to show
            if burst > 1:
                conn.session.tokens.expires_ms = 0  # expired again, for the client only
            usernames = run_in_threads(20, lambda: conn.run(conn.client.user()).username)
            assert usernames == ["demo_player"] * 20
            assert conn.client.refresh_count == burst
        stored = json.loads((tmp_path / "session.json").read_text())["tokens"]["refresh_token"]
        assert stored == conn.session.tokens.refresh_token
    assert len(refreshes(emulator.base_url, before)) == 3


def run_in_threads(count, work):
    """Start `count` threads at once on `work`; return their results (raise the first error)."""
    start = threading.Barrier(count)
    results, errors = [], []

    def worker():
        start.wait()
        try:
            results.append(work())
        except Exception as error:  # noqa: BLE001 - re-raised below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if errors:
        raise errors[0]
    return results


def test_a_401_refreshes_once_and_retries(emulator, tmp_path):
    sign_in_home(emulator.base_url, tmp_path)
    # an hour passes on the server only: the client still believes its token is fresh
    configure(emulator.base_url, clock_offset=3700)
    before = len(request_log(emulator.base_url))
    with connect(emulator, tmp_path) as conn:
        assert conn.run(conn.client.user()).username == "demo_player"
        assert conn.client.refresh_count == 1
    log = request_log(emulator.base_url)[before:]
    assert [(e["path"], e["status"]) for e in log] == [
        ("/api/v1/user", 401), (REFRESH_PATH, 200), ("/api/v1/user", 200)]


def test_rotated_refresh_token_is_stored_before_use(emulator, tmp_path):
    old = sign_in_home(emulator.base_url, tmp_path)
    expire_stored_tokens(tmp_path)
    events = []
    with connect(emulator, tmp_path) as conn:
        save, send = conn.store.save, conn.driver.send

        def recording_save(api, tokens, *args):
            save(api, tokens, *args)
            events.append(("saved", json.loads((tmp_path / "session.json").read_text())["tokens"]["access_token"]))

        def recording_send(request):
            events.append(("sent", request.url.rsplit("/", 1)[-1], request.headers.get("authorization")))
            return send(request)

        conn.store.save, conn.driver.send = recording_save, recording_send
        conn.run(conn.client.user())
        new = conn.session.tokens
    assert new.refresh_token != old.refresh_token
    assert events == [("sent", "refresh", None), ("saved", new.access_token),
                      ("sent", "user", "Bearer " + new.access_token)]
    stored = json.loads((tmp_path / "session.json").read_text())["tokens"]
    assert (stored["access_token"], stored["refresh_token"]) == (new.access_token, new.refresh_token)
    # the old refresh token was rotated away: the emulator refuses it
    reply = httpx.post(api_of(emulator.base_url) + "/auth/session/refresh",
                       json={"refresh_token": old.refresh_token, "access_token": old.access_token})
    assert reply.status_code == 401


def test_a_refused_refresh_means_sign_in_again_without_looping(emulator, tmp_path):
    sign_in_home(emulator.base_url, tmp_path)
    path = tmp_path / "session.json"
    record = json.loads(path.read_text())
    record["tokens"]["refresh_token"] = "not-a-valid-refresh-token"
    record["tokens"]["expires_at"] = int(time.time()) - 10
    path.write_text(json.dumps(record))
    before = len(request_log(emulator.base_url))
    with connect(emulator, tmp_path) as conn:
        with pytest.raises(SignInRequired) as info:
            conn.run(conn.client.user())
        assert "sign in again" in str(info.value)
        assert not conn.session.signed_in
        with pytest.raises(SignInRequired):
            conn.run(conn.client.user())  # no tokens left: nothing is sent
    assert not path.exists()
    assert [e.get("path") for e in request_log(emulator.base_url)[before:]] == [REFRESH_PATH]


def test_429_retry_after_is_honoured(emulator, tmp_path):
    sign_in_home(emulator.base_url, tmp_path)
    configure(emulator.base_url, rate_limit=3, retry_after=1)
    with connect(emulator, tmp_path, limiter=False) as conn:
        started = time.monotonic()
        pager = Pager(1)
        for _ in range(5):
            conn.run(conn.client.tones_page("favorited", pager))
        elapsed = time.monotonic() - started
        assert conn.driver.slept_ms >= 1000
    statuses = [e.get("status") for e in request_log(emulator.base_url)]
    assert 429 in statuses
    assert elapsed >= 1.0
