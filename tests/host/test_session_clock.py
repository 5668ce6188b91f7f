"""A saved session across wall-clock time (freezegun): the next run of the CLI refreshes
before its first request when the stored expiry is near or past, and not otherwise;
the rotated pair is on disk before it is used."""

import calendar
import json
import time

import httpx
import pytest
from freezegun import freeze_time

from tonebridge.api.token_store import TokenStore
from tonebridge.api.transport import Connection, monotonic_ms
from tonecore.session import Tokens

API = "https://t3k.example/api/v1"
SAVED_AT = calendar.timegm((2026, 11, 22, 10, 0, 0))  # freeze_time below, in UTC


class FakeService:
    """An httpx MockTransport handler for /user and a rotating refresh."""

    def __init__(self, store):
        self.store = store
        self.calls = []  # (path, authorization)
        self.on_disk_at_first_use = None

    def __call__(self, request):
        auth = request.headers.get("authorization")
        self.calls.append((request.url.path, auth))
        if request.url.path == "/api/v1/auth/session/refresh":
            assert json.loads(request.content) == {"refresh_token": "R1", "access_token": "A1"}
            return httpx.Response(200, json={"access_token": "A2", "refresh_token": "R2", "expires_in": 3600,
                                             "token_type": "bearer"})
        if request.url.path == "/api/v1/user":
            if auth == "Bearer A2" and self.on_disk_at_first_use is None:
                self.on_disk_at_first_use = json.load(open(self.store.path))["tokens"]["refresh_token"]
            return httpx.Response(200, json={"id": "u1", "username": "demo", "avatar_url": None, "url": "https://x/u"})
        return httpx.Response(404, json={"error": "not_found"})


@pytest.mark.parametrize("later_s, refreshed", [
    (1800, False),  # 30 min left: more than max(60 s, 10 % of 1 h)
    (3300, True),  # 5 min left: inside the 6 min margin
    (20 * 3600, True),  # the next day: long expired
])
def test_a_saved_session_is_refreshed_on_the_next_run_only_when_due(tmp_path, later_s, refreshed):
    store = TokenStore(str(tmp_path / "home"))
    service = FakeService(store)
    with freeze_time("2026-11-22 10:00:00") as frozen:
        store.save(API, Tokens("A1", "R1", 3600, monotonic_ms() + 3600 * 1000), monotonic_ms(), time.time())
        frozen.tick(later_s)  # a later run of the CLI: a new process, a new monotonic clock
        http = httpx.Client(transport=httpx.MockTransport(service))
        with Connection(API, TokenStore(store.home), http=http) as conn:
            assert conn.run(conn.client.user()).username == "demo"
    if refreshed:
        assert service.calls == [("/api/v1/auth/session/refresh", None), ("/api/v1/user", "Bearer A2")]
        assert service.on_disk_at_first_use == "R2"  # persisted before the first use
        saved = json.load(open(store.path))["tokens"]
        assert saved["refresh_token"] == "R2"
        assert saved["expires_at"] == SAVED_AT + later_s + 3600  # wall clock of the refresh + expires_in
    else:
        assert service.calls == [("/api/v1/user", "Bearer A1")]
        assert json.load(open(store.path))["tokens"]["refresh_token"] == "R1"
