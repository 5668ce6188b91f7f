"""The emulator as today's TONE3000: OAuth 2.0 (PKCE, LAN relay, device grant) and the
current API dialect (snake_case, `format`, `architecture`), over real sockets, driven by
the scripted phone through the real HTML pages."""

import urllib.parse

import httpx
import pytest

from tonebridge.dev import phone
from tonebridge.dev.emulator.oauth import DEMO_CLIENT_ID
from tonebridge.dev.emulator.server import EmulatorServer
from tonecore.oauth import PkceSignIn, challenge_of

EMAIL = "demo@example.com"
LOOPBACK = "http://127.0.0.1:8765/callback"
LAN = "http://192.168.1.50:8080/cb/7"


@pytest.fixture(scope="module")
def emu():
    with EmulatorServer() as server:  # today's dialect is the default
        yield server


def api(emu):
    return emu.base_url + "/api/v1"


def authorize(emu, redirect_uri, **extra):
    flow = PkceSignIn(api(emu), DEMO_CLIENT_ID, redirect_uri)
    url = flow.start_url()
    if extra:
        url += "&" + urllib.parse.urlencode(extra)
    return flow, url


def sign_in(emu, redirect_uri, consent="allow"):
    """(flow, the redirect that leaves TONE3000 for the app, its query as a dict)."""
    flow, url = authorize(emu, redirect_uri)
    leaving = phone.sign_in(url, EMAIL, phone.outbox_code(emu.base_url, EMAIL), follow_to_callback=False,
                            consent=consent)
    assert leaving.is_redirect
    location = leaving.headers["location"]
    return flow, leaving, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def token(emu, **fields):
    return httpx.post(api(emu) + "/oauth/token", data=dict({"client_id": DEMO_CLIENT_ID}, **fields), timeout=10)


def redeem(emu, flow, code, **changes):
    fields = dict(grant_type="authorization_code", code=code, code_verifier=flow.verifier,
                  redirect_uri=flow.redirect_uri)
    fields.update(changes)
    return token(emu, **fields)


def bearer(access):
    return {"authorization": "Bearer " + access}


def test_bad_client_or_redirect_gets_an_error_page_never_a_redirect(emu):
    cases = [
        PkceSignIn(api(emu), "t3k_pub_nobody", LOOPBACK).start_url(),
        authorize(emu, "https://evil.example/callback")[1],  # not registered for the demo key
        authorize(emu, "http://203.0.113.9:8080/cb")[1],  # plain http to a public address
        authorize(emu, LOOPBACK)[1].replace(urllib.parse.quote(LOOPBACK, safe=""), "javascript%3Aalert(1)"),
    ]
    flow, url = authorize(emu, LOOPBACK)
    cases.append(url.replace("code_challenge_method=S256", "code_challenge_method=plain"))
    for url in cases:
        reply = httpx.get(url, timeout=10)
        assert reply.status_code >= 400 and "location" not in reply.headers, url
        assert "<h1>" in reply.text


def test_loopback_pkce_round_trip_and_single_use_code(emu):
    flow, leaving, query = sign_in(emu, LOOPBACK)
    assert leaving.headers["location"].startswith(LOOPBACK + "?")
    assert query["state"] == flow.state and query["code"]
    reply = redeem(emu, flow, query["code"])
    assert reply.status_code == 200, reply.text
    session = reply.json()
    assert session["token_type"] == "bearer" and session["expires_in"] == 3600
    assert httpx.get(api(emu) + "/user", headers=bearer(session["access_token"])).json()["username"] == "demo_player"
    again = redeem(emu, flow, query["code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # a replayed code also revokes what it had given out
    assert httpx.get(api(emu) + "/user", headers=bearer(session["access_token"])).status_code == 401


def test_exchange_refuses_a_wrong_verifier_or_redirect_uri(emu):
    for change in ({"code_verifier": "x" * 43}, {"redirect_uri": LOOPBACK + "/other"}, {"client_id": "t3k_pub_x"}):
        flow, _, query = sign_in(emu, LOOPBACK)
        reply = redeem(emu, flow, query["code"], **change)
        assert reply.status_code in (400, 401)
        assert reply.json()["error"] in ("invalid_grant", "invalid_client")


def test_lan_relay_goes_through_the_bridge_with_a_307(emu):
    flow, leaving, query = sign_in(emu, LAN)
    assert leaving.status_code == 307
    assert leaving.url.path == "/api/v1/oauth/lan-bridge"
    assert leaving.headers["location"].startswith(LAN + "?")
    assert query["state"] == flow.state
    assert redeem(emu, flow, query["code"]).status_code == 200
    # the bridge leads only to a private address
    bad = httpx.get(api(emu) + "/oauth/lan-bridge", params={"to": "http://evil.example/x?code=1"})
    assert bad.status_code == 400 and "location" not in bad.headers


def test_deny_and_cancel_come_back_as_such(emu):
    flow, leaving, query = sign_in(emu, LOOPBACK, consent="deny")
    assert query == {"error": "access_denied", "state": flow.state}
    flow, url = authorize(emu, LOOPBACK)
    with httpx.Client(timeout=10) as http:
        page = http.get(url)
        cancel = [f for f in phone.parse_forms(page.text) if "cancel" in (f.action or "")][0]
        back = http.post(urllib.parse.urljoin(url, cancel.action), data=cancel.fields)
    assert back.status_code == 303
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.headers["location"]).query)) == {
        "canceled": "true", "state": flow.state}


def test_refresh_rotates_and_a_reused_token_revokes_the_family(emu):
    flow, _, query = sign_in(emu, LOOPBACK)
    first = redeem(emu, flow, query["code"]).json()
    second = token(emu, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert httpx.get(api(emu) + "/user", headers=bearer(first["access_token"])).status_code == 401
    assert httpx.get(api(emu) + "/user", headers=bearer(second["access_token"])).status_code == 200
    reused = token(emu, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # theft suspected: the whole family is gone, the newest pair too
    assert httpx.get(api(emu) + "/user", headers=bearer(second["access_token"])).status_code == 401
    assert token(emu, grant_type="refresh_token", refresh_token=second["refresh_token"]).status_code == 400


def start_device(emu):
    reply = httpx.post(api(emu) + "/oauth/device_authorization", data={"client_id": DEMO_CLIENT_ID}, timeout=10)
    assert reply.status_code == 200
    grant = reply.json()
    assert grant["verification_uri"] == emu.base_url + "/activate"
    assert grant["interval"] == 5 and grant["expires_in"] == 600
    assert len(grant["user_code"]) == 9 and grant["user_code"][4] == "-"
    return grant


def poll(emu, grant):
    return token(emu, grant_type="urn:ietf:params:oauth:grant-type:device_code", device_code=grant["device_code"])


def test_device_grant_pending_slow_down_then_approved(emu):
    grant = start_device(emu)
    assert poll(emu, grant).json()["error"] == "authorization_pending"
    assert poll(emu, grant).json()["error"] == "slow_down"  # polled again at once
    done = phone.activate(grant["verification_uri_complete"], grant["user_code"], EMAIL,
                          phone.outbox_code(emu.base_url, EMAIL))
    assert "Device connected" in done.text
    emu.config.apply({"clock_offset": 20.0})  # the interval has passed
    try:
        reply = poll(emu, grant)
        assert reply.status_code == 200, reply.text
        assert httpx.get(api(emu) + "/user", headers=bearer(reply.json()["access_token"])).status_code == 200
        assert poll(emu, grant).json()["error"] == "invalid_grant"  # single use
    finally:
        emu.config.apply({"clock_offset": 0.0})


def test_device_grant_typed_code_deny_and_expiry(emu):
    grant = start_device(emu)
    done = phone.activate(grant["verification_uri"], grant["user_code"].lower().replace("-", " "), EMAIL,
                          phone.outbox_code(emu.base_url, EMAIL), consent="deny")
    assert "Not connected" in done.text
    assert poll(emu, grant).json()["error"] == "access_denied"
    grant = start_device(emu)
    emu.config.apply({"clock_offset": 601.0})
    try:
        assert poll(emu, grant).json()["error"] == "expired_token"
        wrong = httpx.post(emu.base_url + "/activate", data={"user_code": grant["user_code"]})
        assert wrong.status_code == 400 and "not valid" in wrong.text
    finally:
        emu.config.apply({"clock_offset": 0.0})


@pytest.fixture(scope="module")
def demo_access(emu):
    flow, _, query = sign_in(emu, LOOPBACK)
    return redeem(emu, flow, query["code"]).json()["access_token"]


def test_todays_dialect_pages_tones_and_models(emu, demo_access):
    headers = bearer(demo_access)
    page = httpx.get(api(emu) + "/tones/favorited", params={"page_size": 100}, headers=headers)
    body = page.json()
    assert set(body) == {"data", "page", "page_size", "total", "total_pages"}
    assert "x-tone3000-deprecations" not in page.headers
    tones = body["data"]
    assert all("format" in t and "platform" not in t for t in tones)
    assert {t["format"] for t in tones} >= {"nam", "ir", "aida-x", "proteus"}
    assert "full-rig" not in {t["gear"] for t in tones} and "amp-cab" in {t["gear"] for t in tones}
    legacy = httpx.get(api(emu) + "/models", params={"toneId": 3, "pageSize": 100}, headers=headers)
    assert legacy.headers["x-tone3000-deprecations"] == "pageSize, toneId"
    models = legacy.json()["data"]
    assert {m["architecture_version"] for m in models} == {"1"}
    a2 = httpx.get(api(emu) + "/models", params={"tone_id": 3, "architecture": "2"}, headers=headers).json()["data"]
    assert [m["architecture_version"] for m in a2] == ["2", "2"] and not {m["id"] for m in a2} & {m["id"] for m in models}
    assert httpx.get(api(emu) + "/models", params={"tone_id": 3, "architecture": "1,2"}, headers=headers).status_code == 400
    one = httpx.get(api(emu) + "/models/%d" % a2[0]["id"], headers=headers).json()
    assert one["name"] == a2[0]["name"] and one["tone_id"] == 3
    tone = httpx.get(api(emu) + "/tones/3", headers=headers).json()
    assert tone["id"] == 3 and tone["format"] == "nam" and tone["models_count"] == len(models)


def test_downloaded_trending_and_latest_lists(emu, demo_access):
    headers = bearer(demo_access)
    model = httpx.get(api(emu) + "/models", params={"tone_id": 4}, headers=headers).json()["data"][0]
    assert httpx.get(model["model_url"], headers=headers).status_code == 200
    downloaded = httpx.get(api(emu) + "/tones/downloaded", headers=headers).json()["data"]
    assert downloaded[0]["id"] == 4
    trending = httpx.get(api(emu) + "/tones/trending", params={"page_size": 100}, headers=headers).json()
    counts = [t["downloads_count"] for t in trending["data"]]
    assert counts == sorted(counts, reverse=True) and all(t["is_public"] for t in trending["data"])
    latest = httpx.get(api(emu) + "/tones/latest", params={"page_size": 100}, headers=headers).json()["data"]
    assert [t["created_at"] for t in latest] == sorted((t["created_at"] for t in latest), reverse=True)


def test_the_seed_dialect_hides_todays_additions(emu, demo_access):
    emu.config.apply({"dialect": "v1"})
    try:
        headers = bearer(demo_access)
        body = httpx.get(api(emu) + "/models", params={"toneId": 3, "pageSize": 100}, headers=headers).json()
        assert set(body) == {"data", "page", "pageSize", "total", "totalPages"}
        assert all("architecture_version" not in m for m in body["data"])
        assert httpx.get(api(emu) + "/tones/3", headers=headers).status_code == 404
        tones = httpx.get(api(emu) + "/tones/favorited", headers=headers).json()["data"]
        assert all("platform" in t and "format" not in t for t in tones)
    finally:
        emu.config.apply({"dialect": "current"})


def test_challenge_helper_matches_the_server(emu):
    from tonebridge.dev.emulator.oauth import s256

    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == challenge_of(
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
