"""The TONE3000 emulator over real sockets: sign-in pages, sessions, listings, downloads,
faults, and the `tonebridge emulator` command line."""

import dataclasses
import hashlib
import html.parser
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import wave

import httpx
import pytest

from tonebridge.dev.emulator import EmulatorConfig
from tonebridge.dev.emulator.catalogue import Catalogue
from tonecore.records import GEARS, LICENSES, PLATFORMS, SIZES
from tonebridge.dev.emulator.model_files import FileStore, wavenet_config, wavenet_weight_count, WAVENET_PRESETS
from tonebridge.dev.emulator.server import EmulatorServer

DEMO = "demo@example.com"
CALLBACK = "http://127.0.0.1:9/callback"
TONE_KEYS = {"id", "user_id", "user", "created_at", "updated_at", "title", "description", "gear", "images",
             "is_public", "links", "platform", "license", "sizes", "makes", "tags", "models_count",
             "downloads_count", "favorites_count", "url"}
MODEL_KEYS = {"id", "created_at", "updated_at", "user_id", "model_url", "name", "size", "tone_id"}
PAGE_KEYS = {"data", "page", "pageSize", "total", "totalPages"}
RUNTIME_DEFAULTS = {f.name: f.default for f in dataclasses.fields(EmulatorConfig)
                    if f.name not in ("host", "port", "storage_port", "seed", "bench_files", "cut_queue")}


# -- fixtures and helpers ---------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    with EmulatorServer(dialect="v1") as emu:  # this module checks the seed document's API
        yield emu


@pytest.fixture
def emu(server):
    """The module's emulator, with defaults restored and logs cleared after each test."""
    yield server
    server.config.apply(dict(RUNTIME_DEFAULTS, dialect="v1"))
    server.state.reset()


class Forms(html.parser.HTMLParser):
    """Collects <form>s: action, method, and input name -> value (hidden ones included)."""

    def __init__(self, text):
        super().__init__()
        self.forms = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "method": attrs.get("method", "get"), "fields": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""

    def form_with(self, field):
        return next(f for f in self.forms if field in f["fields"])


def submit(base, page, field, value):
    """Fill `field` of the form that has it and post it like a browser."""
    form = Forms(page.text).form_with(field)
    data = dict(form["fields"], **{field: value})
    return httpx.post(urllib.parse.urljoin(base, form["action"]), data=data)


def outbox(base):
    return httpx.get(base + "/_emulator/outbox").json()


def start_page(base, redirect=CALLBACK, otp_only=True):
    params = {"redirect_url": redirect}
    if otp_only:
        params["otp_only"] = "true"
    return httpx.get(base + "/api/v1/auth", params=params)


def code_page(base, email=DEMO, redirect=CALLBACK):
    """(code page, the code that was 'emailed')."""
    page = submit(base, start_page(base, redirect), "email", email)
    assert page.status_code == 200, page.text
    return page, outbox(base)[-1]["code"]


def api_key(base, email=DEMO, redirect=CALLBACK):
    page, code = code_page(base, email, redirect)
    done = submit(base, page, "code", code)
    assert done.status_code == 303
    return urllib.parse.parse_qs(urllib.parse.urlsplit(done.headers["location"]).query)["api_key"][0]


def session(base, email=DEMO):
    reply = httpx.post(base + "/api/v1/auth/session", json={"api_key": api_key(base, email)})
    assert reply.status_code == 200, reply.text
    return reply.json()


def bearer(tokens):
    return {"Authorization": "Bearer " + tokens["access_token"]}


def configure(base, **changes):
    reply = httpx.post(base + "/_emulator/config", json=changes)
    assert reply.status_code == 200, reply.text
    return reply.json()


def info(base, model_id):
    return httpx.get("%s/_emulator/models/%d" % (base, model_id)).json()


def models_of(base, tokens, tone_id):
    reply = httpx.get(base + "/api/v1/models", params={"toneId": tone_id, "pageSize": 100}, headers=bearer(tokens))
    assert reply.status_code == 200
    return reply.json()["data"]


@pytest.fixture
def demo(emu):
    return session(emu.base_url)


# -- sign-in pages ----------------------------------------------------------------------

def test_otp_sign_in_through_the_forms(emu, capsys):
    base = emu.base_url
    first = start_page(base, "http://127.0.0.1:9/cb?state=xyz#done")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    assert 'name="viewport"' in first.text and "<script" not in first.text
    assert 'type="email"' in first.text and "Cancel" in first.text
    page = submit(base, first, "email", DEMO)
    assert page.status_code == 200 and 'name="code"' in page.text and 'inputmode="numeric"' in page.text
    sent = outbox(base)[-1]
    assert sent["email"] == DEMO and len(sent["code"]) == 6 and sent["code"].isdigit()
    assert sent["time"].endswith("Z")
    assert "otp: %s %s" % (DEMO, sent["code"]) in capsys.readouterr().out
    done = submit(base, page, "code", sent["code"])
    assert done.status_code == 303
    location = done.headers["location"]
    assert location.startswith("http://127.0.0.1:9/cb?state=xyz&api_key=") and location.endswith("#done")


@pytest.mark.parametrize("redirect", [None, "", "ftp://example.com/x", "/relative/path", "http://"])
def test_a_bad_redirect_url_is_a_clear_400_page(emu, redirect):
    params = {} if redirect is None else {"redirect_url": redirect, "otp_only": "true"}
    reply = httpx.get(emu.base_url + "/api/v1/auth", params=params)
    assert reply.status_code == 400 and "redirect_url" in reply.text and "<form" not in reply.text


def test_wrong_code_then_right_code_which_is_single_use(emu):
    base = emu.base_url
    page, code = code_page(base)
    wrong = "%06d" % ((int(code) + 1) % 1000000)
    refused = submit(base, page, "code", wrong)
    assert refused.status_code == 400 and "not right" in refused.text and "4 attempts left" in refused.text
    done = submit(base, refused, "code", code)
    assert done.status_code == 303 and "api_key=" in done.headers["location"]
    again = submit(base, refused, "code", code)
    assert again.status_code == 400 and "already used" in again.text


def test_five_wrong_codes_kill_the_code_and_resend_gives_a_new_one(emu):
    base = emu.base_url
    page, code = code_page(base)
    wrong = "%06d" % ((int(code) + 1) % 1000000)
    for _ in range(5):
        page = submit(base, page, "code", wrong) if 'name="code"' in page.text else page
    assert "Too many wrong codes" in page.text
    dead = submit(base, page, "flow", Forms(page.text).forms[0]["fields"]["flow"])  # the "new code" form
    assert dead.status_code == 200 and 'name="code"' in dead.text
    fresh = outbox(base)[-1]["code"]
    # the old code is dead even if right; the new one works
    stale = httpx.post(base + "/api/v1/auth/code", data={"flow": Forms(dead.text).form_with("code")["fields"]["flow"],
                                                         "code": code})
    assert stale.status_code == 400 or code == fresh
    assert submit(base, dead, "code", fresh).status_code == 303


def test_codes_expire_after_ten_minutes(emu):
    base = emu.base_url
    page, code = code_page(base)
    configure(base, clock_offset=601)
    expired = submit(base, page, "code", code)
    assert expired.status_code == 400 and "expired" in expired.text


def test_cancel_goes_back_with_access_denied(emu):
    page = start_page(emu.base_url, "http://127.0.0.1:9/cb?state=1")
    form = next(f for f in Forms(page.text).forms if "cancel" in f["action"])
    reply = httpx.post(urllib.parse.urljoin(emu.base_url, form["action"]), data=form["fields"])
    assert reply.status_code == 303
    assert reply.headers["location"] == "http://127.0.0.1:9/cb?state=1&error=access_denied"


def test_magic_link_sign_in(emu, capsys):
    base = emu.base_url
    page = submit(base, start_page(base, otp_only=False), "email", "new.player@example.com")
    assert page.status_code == 200 and "sign-in link" in page.text and 'name="code"' not in page.text
    link = outbox(base)[-1]["link"]
    assert link.startswith(base + "/api/v1/auth/magic?")
    assert "magic-link: new.player@example.com " + link in capsys.readouterr().out
    landed = httpx.get(link)
    assert landed.status_code == 303 and landed.headers["location"].startswith(CALLBACK + "?api_key=")
    assert httpx.get(link).status_code == 400  # single use
    key = landed.headers["location"].split("api_key=")[1]
    tokens = httpx.post(base + "/api/v1/auth/session", json={"api_key": key}).json()
    me = httpx.get(base + "/api/v1/user", headers=bearer(tokens)).json()
    assert me["username"].startswith("new_player")


# -- sessions ---------------------------------------------------------------------------

def test_session_exchange_is_single_use_and_accepts_any_content_type(emu):
    base = emu.base_url
    key = api_key(base)
    # like the seed's fetch(): a JSON body without a Content-Type header
    reply = httpx.post(base + "/api/v1/auth/session", content=json.dumps({"api_key": key}))
    assert reply.status_code == 200
    tokens = reply.json()
    assert set(tokens) == {"access_token", "refresh_token", "expires_in", "token_type"}
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 3600
    again = httpx.post(base + "/api/v1/auth/session", json={"api_key": key})
    assert again.status_code == 401 and set(again.json()) == {"error", "message"}
    assert httpx.post(base + "/api/v1/auth/session", json={"api_key": "nope"}).status_code == 401
    assert httpx.post(base + "/api/v1/auth/session", content=b"{not json").status_code == 400
    assert httpx.post(base + "/api/v1/auth/session", json=["x"]).status_code == 400
    late = api_key(base)
    configure(base, clock_offset=601)
    assert httpx.post(base + "/api/v1/auth/session", json={"api_key": late}).status_code == 401


def test_refresh_rotates_and_revokes_the_old_tokens(emu, demo):
    base = emu.base_url
    url = base + "/api/v1/auth/session/refresh"
    new = httpx.post(url, content=json.dumps(demo)).json()
    assert new["refresh_token"] != demo["refresh_token"] and new["access_token"] != demo["access_token"]
    stale = httpx.post(url, json={"refresh_token": demo["refresh_token"], "access_token": demo["access_token"]})
    assert stale.status_code == 401 and stale.json()["error"]
    assert httpx.get(base + "/api/v1/user", headers=bearer(demo)).status_code == 401
    assert httpx.get(base + "/api/v1/user", headers=bearer(new)).status_code == 200
    assert httpx.post(url, json={"refresh_token": "garbage"}).status_code == 401
    assert httpx.post(url, content=b"[]").status_code == 400


def test_refresh_without_rotation_keeps_the_refresh_token(emu, demo):
    configure(emu.base_url, rotate_refresh=False)
    url = emu.base_url + "/api/v1/auth/session/refresh"
    one = httpx.post(url, json=demo).json()
    two = httpx.post(url, json=dict(demo, access_token=one["access_token"])).json()
    assert one["refresh_token"] == two["refresh_token"] == demo["refresh_token"]
    assert httpx.get(emu.base_url + "/api/v1/user", headers=bearer(two)).status_code == 200


def test_expired_tokens(emu, demo):
    base = emu.base_url
    configure(base, clock_offset=3601)
    expired = httpx.get(base + "/api/v1/user", headers=bearer(demo))
    assert expired.status_code == 401 and expired.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    renewed = httpx.post(base + "/api/v1/auth/session/refresh", json=demo)
    assert renewed.status_code == 200
    assert httpx.get(base + "/api/v1/user", headers=bearer(renewed.json())).status_code == 200
    configure(base, clock_offset=31 * 86400)
    assert httpx.post(base + "/api/v1/auth/session/refresh", json=renewed.json()).status_code == 401


def test_short_token_ttl_really_expires(emu):
    configure(emu.base_url, token_ttl=1)
    tokens = session(emu.base_url)
    assert tokens["expires_in"] == 1
    time.sleep(1.1)
    assert httpx.get(emu.base_url + "/api/v1/user", headers=bearer(tokens)).status_code == 401


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic Zm9vOmJhcg=="])
def test_bearer_is_required(emu, header):
    headers = {"Authorization": header} if header else {}
    for path in ("/api/v1/user", "/api/v1/tones/created", "/api/v1/models?toneId=1",
                 "/api/v1/models/1001/download/jcm800-2203-gain-3.nam"):
        reply = httpx.get(emu.base_url + path, headers=headers)
        assert reply.status_code == 401, path
        assert reply.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert reply.json()["error"] == "invalid_token"


# -- user, tones, models ----------------------------------------------------------------

def test_user_shape(emu, demo):
    me = httpx.get(emu.base_url + "/api/v1/user", headers=bearer(demo)).json()
    assert set(me) == {"id", "username", "avatar_url", "url", "bio", "links", "created_at", "updated_at"}
    assert me["username"] == "demo_player" and len(me["id"]) == 36


def test_pagination_of_favorites(emu, demo):
    base = emu.base_url
    url = base + "/api/v1/tones/favorited"
    first = httpx.get(url, headers=bearer(demo))
    body = first.json()
    assert set(body) == PAGE_KEYS and (body["page"], body["pageSize"]) == (1, 10)
    assert body["total"] >= 12 and body["totalPages"] == -(-body["total"] // 10)
    seen = []
    for page in range(1, 4):
        part = httpx.get(url, params={"page": page, "pageSize": 5}, headers=bearer(demo)).json()
        assert part["totalPages"] == -(-body["total"] // 5) and part["pageSize"] == 5
        seen += [t["id"] for t in part["data"]]
    assert seen == [t["id"] for t in httpx.get(url, params={"pageSize": 100}, headers=bearer(demo)).json()["data"]]
    assert len(set(seen)) == body["total"]
    past = httpx.get(url, params={"page": 99}, headers=bearer(demo)).json()
    assert past["data"] == [] and past["total"] == body["total"] and past["page"] == 99
    assert httpx.get(url, params={"pageSize": 1000}, headers=bearer(demo)).json()["pageSize"] == 100
    for bad in ({"page": 0}, {"page": "two"}, {"pageSize": 0}, {"pageSize": "-3"}, {"page": ""}):
        reply = httpx.get(url, params=bad, headers=bearer(demo))
        assert reply.status_code == 400 and set(reply.json()) == {"error", "message"}
    tone = body["data"][0]
    assert set(tone) == TONE_KEYS and set(tone["user"]) == {"id", "username", "avatar_url", "url"}
    assert tone["url"].startswith("https://www.tone3000.com/tones/") and tone["url"].endswith("-%d" % tone["id"])


def test_created_tones_and_a_new_user(emu, demo):
    base = emu.base_url
    created = httpx.get(base + "/api/v1/tones/created", headers=bearer(demo)).json()
    assert created["total"] >= 4 and any(t["is_public"] is False for t in created["data"])
    me = httpx.get(base + "/api/v1/user", headers=bearer(demo)).json()
    assert all(t["user_id"] == me["id"] for t in created["data"])
    stranger = session(base, "someone.else@example.com")
    for which in ("created", "favorited"):
        empty = httpx.get(base + "/api/v1/tones/" + which, headers=bearer(stranger)).json()
        assert (empty["data"], empty["total"]) == ([], 0)
    assert httpx.get(base + "/api/v1/user", headers=bearer(stranger)).json()["id"] != me["id"]


def test_model_listing_rules(emu, demo):
    base = emu.base_url
    url = base + "/api/v1/models"
    headers = bearer(demo)
    assert httpx.get(url, headers=headers).status_code == 400
    assert httpx.get(url, params={"toneId": "abc"}, headers=headers).status_code == 400
    assert httpx.get(url, params={"toneId": 99999}, headers=headers).status_code == 404
    assert httpx.get(url, params={"toneId": 33}, headers=headers).status_code == 404  # someone else's private tone
    own_private = httpx.get(url, params={"toneId": 22}, headers=headers).json()
    assert own_private["total"] == 2 and set(own_private["data"][0]) == MODEL_KEYS
    # a public tone of someone else: listed, but not downloadable
    other = models_of(base, demo, 1)
    assert other and httpx.get(other[0]["model_url"], headers=headers).status_code == 403
    # a favorited tone: downloadable
    fav = models_of(base, demo, 3)
    assert httpx.head(fav[0]["model_url"], headers=headers).status_code == 200
    assert all(m["model_url"].startswith(base + "/api/v1/models/%d/download/" % m["id"]) for m in fav)
    pages = [httpx.get(url, params={"toneId": 3, "page": p, "pageSize": 2}, headers=headers).json()
             for p in (1, 2, 3)]
    assert pages[0]["totalPages"] == 3 and [m["id"] for p in pages for m in p["data"]] == [m["id"] for m in fav]
    bad = httpx.get(base + "/api/v1/models/1001/download/wrong-name.nam", headers=headers)
    assert bad.status_code == 404


def test_favorites_cover_every_format_and_size(emu, demo):
    base = emu.base_url
    tones = httpx.get(base + "/api/v1/tones/favorited", params={"pageSize": 100}, headers=bearer(demo)).json()["data"]
    kinds = set()
    count = 0
    for tone in tones:
        for model in models_of(base, demo, tone["id"]):
            kinds.add((tone["platform"], model["size"]))
            count += 1
    assert count >= 30
    for size in ("nano", "feather", "lite", "standard", "custom"):
        assert ("nam", size) in kinds
    assert {"aida-x", "proteus", "ir", "aa-snapshot"} <= {platform for platform, _ in kinds}


def test_catalogue_covers_every_enum_and_is_deterministic():
    started = time.monotonic()
    catalogue = Catalogue(7)
    assert time.monotonic() - started < 1.0
    tones = [t.to_json() for t in catalogue.tones.values()]
    assert len(tones) >= 30
    assert {t["gear"] for t in tones} == set(GEARS)
    assert {t["platform"] for t in tones} == set(PLATFORMS)
    assert {t["license"] for t in tones} == set(LICENSES)
    assert {s for t in tones for s in t["sizes"]} == set(SIZES)
    demo = catalogue.demo.id
    assert any(not t.is_public and t.user.id != demo and not catalogue.has_favorited(demo, t.id)
               for t in catalogue.tones.values())
    assert len(catalogue.created_by(demo)) >= 4 and len(catalogue.favorited_by(demo)) >= 12
    again = Catalogue(7)
    assert [t.to_json() for t in again.tones.values()] == tones
    model = catalogue.models[1001]
    assert FileStore(catalogue).get(model).sha256 == FileStore(again).get(again.models[1001]).sha256
    assert FileStore(Catalogue(8)).get(Catalogue(8).models[1001]).sha256 != FileStore(catalogue).get(model).sha256


def test_nam_files_have_real_structure_and_sizes():
    catalogue = Catalogue(3000)
    files = FileStore(catalogue)
    expected_kb = {"nano": (15, 25), "feather": (55, 80), "lite": (125, 165), "standard": (295, 415)}
    for model in catalogue.models.values():
        if model.platform != "nam" or model.size == "custom":
            continue
        data = json.loads(files.get(model).data)
        assert {"version", "architecture", "config", "weights", "sample_rate", "metadata"} <= set(data)
        assert data["architecture"] == "WaveNet" and data["sample_rate"] == 48000
        assert len(data["weights"]) == wavenet_weight_count(data["config"])
        low, high = expected_kb[model.size]
        assert low * 1000 <= files.get(model).size <= high * 1000, (model.filename, files.get(model).size)
    assert wavenet_weight_count(wavenet_config(*WAVENET_PRESETS["standard"])) == 13802


# -- downloads --------------------------------------------------------------------------

def test_downloads_match_the_inspection_endpoint(emu, demo):
    base = emu.base_url
    wanted = {"nam": None, "aida-x": None, "proteus": None, "ir": None, "aa-snapshot": None}
    for tone in httpx.get(base + "/api/v1/tones/favorited", params={"pageSize": 100},
                          headers=bearer(demo)).json()["data"]:
        if wanted.get(tone["platform"], 1) is None:
            wanted[tone["platform"]] = models_of(base, demo, tone["id"])[-1]
    for platform, model in wanted.items():
        reply = httpx.get(model["model_url"], headers=bearer(demo))
        assert reply.status_code == 200, platform
        expected = info(base, model["id"])
        assert len(reply.content) == expected["size"] == int(reply.headers["content-length"])
        assert hashlib.sha256(reply.content).hexdigest() == expected["sha256"]
        assert reply.headers["accept-ranges"] == "bytes" and reply.headers["last-modified"].endswith("GMT")
        assert reply.headers["etag"].startswith('"') and expected["sha256"][:16] in reply.headers["etag"]
        filename = model["model_url"].rsplit("/", 1)[1]
        assert expected["filename"] == filename and filename in reply.headers["content-disposition"]
        if platform == "ir":
            with wave.open(io.BytesIO(reply.content)) as wav:
                assert (wav.getnchannels(), wav.getframerate()) == (1, 48000) and wav.getnframes() > 0
        else:
            assert isinstance(json.loads(reply.content), dict)


def test_multi_megabyte_files_for_demo(emu, demo):
    sizes = {m["id"]: info(emu.base_url, m["id"])["size"] for tone in (12, 14) for m in models_of(emu.base_url, demo, tone)}
    assert sum(size > 2_000_000 for size in sizes.values()) >= 2
    big = next(m for m in models_of(emu.base_url, demo, 12) if sizes[m["id"]] > 2_000_000)
    with httpx.stream("GET", big["model_url"], headers=bearer(demo)) as reply:
        digest = hashlib.sha256()
        for chunk in reply.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == info(emu.base_url, big["id"])["sha256"]


def test_bench_files_only_when_asked_and_valid():
    plain, bench = Catalogue(3000), Catalogue(3000, bench_files=True)
    assert 90 not in plain.tones and set(bench.models) - set(plain.models) == {1084, 1085, 1086, 1087}
    for tone_id, tone in plain.tones.items():  # the default catalogue is unchanged
        assert [m.to_json("") for m in bench.tones[tone_id].models] == [m.to_json("") for m in tone.models]
    tone = bench.tones[90]
    assert bench.can_download(bench.demo.id, tone) and not tone.is_public
    assert tone.to_json()["id"] == 90  # renders like any tone (listed in demo's created tones)
    files = FileStore(bench)
    sizes = []
    for model in tone.models:
        data = files.get(model).data
        with wave.open(io.BytesIO(data)) as wav:
            assert wav.getnframes() * wav.getsampwidth() == len(data) - 44
        sizes.append(len(data))
    assert 2_000_000 < sizes[0] < 2_200_000 and 20_000_000 < sizes[1] < 22_000_000
    assert 4_000_000 < sizes[2] < 4_400_000 and 40_000 < sizes[3] < 41_000  # the pedal's pair


def _nano(base, tokens):
    model = next(m for m in models_of(base, tokens, 3) if m["size"] == "nano")
    data = httpx.get(model["model_url"], headers=bearer(tokens)).content
    return model, data


def test_ranges_if_range_and_head(emu, demo):
    model, data = _nano(emu.base_url, demo)
    total = len(data)
    url, auth = model["model_url"], bearer(demo)
    part = httpx.get(url, headers=dict(auth, Range="bytes=100-"))
    assert part.status_code == 206 and part.content == data[100:]
    assert part.headers["content-range"] == "bytes 100-%d/%d" % (total - 1, total)
    assert int(part.headers["content-length"]) == total - 100
    middle = httpx.get(url, headers=dict(auth, Range="bytes=10-19"))
    assert middle.status_code == 206 and middle.content == data[10:20]
    tail = httpx.get(url, headers=dict(auth, Range="bytes=-5"))
    assert tail.content == data[-5:] and tail.headers["content-range"] == "bytes %d-%d/%d" % (total - 5, total - 1, total)
    beyond = httpx.get(url, headers=dict(auth, Range="bytes=%d-" % total))
    assert beyond.status_code == 416 and beyond.headers["content-range"] == "bytes */%d" % total
    etag = part.headers["etag"]
    same = httpx.get(url, headers=dict(auth, Range="bytes=50-", **{"If-Range": etag}))
    assert same.status_code == 206 and same.content == data[50:]
    changed = httpx.get(url, headers=dict(auth, Range="bytes=50-", **{"If-Range": '"something-else"'}))
    assert changed.status_code == 200 and changed.content == data
    head = httpx.head(url, headers=auth)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == total
    configure(emu.base_url, range_support=False)
    ignored = httpx.get(url, headers=dict(auth, Range="bytes=100-"))
    assert ignored.status_code == 200 and ignored.content == data and "accept-ranges" not in ignored.headers


def test_chunked_mode_has_no_content_length(emu, demo):
    configure(emu.base_url, chunked=True)
    model, data = _nano(emu.base_url, demo)
    reply = httpx.get(model["model_url"], headers=bearer(demo))
    assert "content-length" not in reply.headers and reply.headers["transfer-encoding"] == "chunked"
    assert hashlib.sha256(reply.content).hexdigest() == info(emu.base_url, model["id"])["sha256"]


def _read_until_cut(url, headers):
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("GET", url, headers=headers) as reply:
            for chunk in reply.iter_raw():
                got += chunk
    return bytes(got)


def test_cut_queue_truncates_the_next_bodies(emu, demo):
    base = emu.base_url
    model = models_of(base, demo, 3)[0]  # a standard NAM, about 300 KB
    expected = info(base, model["id"])
    configure(base, cut_queue=[1234, 98765])
    first = _read_until_cut(model["model_url"], bearer(demo))
    assert len(first) == 1234
    second = _read_until_cut(model["model_url"], dict(bearer(demo), Range="bytes=1234-"))
    assert len(second) == 98765
    rest = httpx.get(model["model_url"], headers=dict(bearer(demo), Range="bytes=%d-" % (1234 + 98765)))
    assert rest.status_code == 206
    assert hashlib.sha256(first + second + rest.content).hexdigest() == expected["sha256"]
    log = [e for e in httpx.get(base + "/_emulator/requests").json() if e["path"].endswith(model["model_url"][-20:])]
    assert [e.get("cut", False) for e in log[-3:]] == [True, True, False]
    assert [e["range"] for e in log[-3:]] == [None, "bytes=1234-", "bytes=99999-"]


def test_a_cut_really_closes_the_socket_early(emu, demo):
    model = models_of(emu.base_url, demo, 3)[0]
    size = info(emu.base_url, model["id"])["size"]
    configure(emu.base_url, cut_after=5000)
    url = urllib.parse.urlsplit(model["model_url"])
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n"
                      % (url.path, url.netloc, demo["access_token"])).encode())
        raw = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"content-length: %d" % size in head.lower() and len(body) == 5000
    # chunked mode: the terminating chunk never comes
    configure(emu.base_url, chunked=True)
    assert len(_read_until_cut(model["model_url"], bearer(demo))) == 5000


def test_storage_redirect_to_a_presigned_url(emu, demo):
    base = emu.base_url
    configure(base, storage_redirect=True)
    model = models_of(base, demo, 4)[0]
    expected = info(base, model["id"])
    redirect = httpx.get(model["model_url"], headers=bearer(demo))
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert location.startswith(emu.storage_url + "/blob/") and emu.storage_url != base
    refused = httpx.get(location, headers=bearer(demo))
    assert refused.status_code == 400 and b"InvalidArgument" in refused.content
    blob = httpx.get(location)
    assert blob.status_code == 200 and hashlib.sha256(blob.content).hexdigest() == expected["sha256"]
    part = httpx.get(location, headers={"Range": "bytes=10-"})
    assert part.status_code == 206 and part.content == blob.content[10:]
    assert httpx.get(location.replace("sig=", "sig=00")).status_code == 403
    configure(base, cut_queue=[777])
    assert len(_read_until_cut(location, {})) == 777
    storage = [e for e in httpx.get(base + "/_emulator/requests").json() if e["origin"] == "storage"]
    assert [e["has_authorization"] for e in storage] == [True, False, False, False, False]
    assert storage[0]["status"] == 400 and storage[1]["status"] == 200


# -- rate limit and faults --------------------------------------------------------------

def test_rate_limit_answers_429_with_retry_after(emu, demo):
    base = emu.base_url
    configure(base, rate_limit=3)
    replies = [httpx.get(base + "/api/v1/user", headers=bearer(demo)) for _ in range(4)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in replies] == ["2", "1", "0", "0"]
    limited = replies[-1]
    assert limited.headers["x-ratelimit-limit"] == "3" and 1 <= int(limited.headers["retry-after"]) <= 60
    assert int(limited.headers["x-ratelimit-reset"]) >= int(time.time())
    assert limited.json()["error"] == "rate_limited"
    assert httpx.get(base + "/_emulator/requests").status_code == 200  # never limited
    configure(base, rate_limit=1, retry_after=1)
    assert httpx.get(base + "/api/v1/user", headers=bearer(demo)).status_code == 200
    penalty = httpx.get(base + "/api/v1/user", headers=bearer(demo))
    assert penalty.status_code == 429 and penalty.headers["retry-after"] == "1"
    time.sleep(1.05)
    assert httpx.get(base + "/api/v1/user", headers=bearer(demo)).status_code == 200
    configure(base, rate_limit=0)
    off = httpx.get(base + "/api/v1/user", headers=bearer(demo))
    assert off.status_code == 200 and "x-ratelimit-limit" not in off.headers


def test_fail_5xx_and_delay(emu, demo):
    base = emu.base_url
    configure(base, fail_5xx=2)
    statuses = [httpx.get(base + "/api/v1/user", headers=bearer(demo)) for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].headers["retry-after"] == "1" and statuses[0].json()["error"]
    configure(base, delay_ms=200)
    started = time.monotonic()
    assert httpx.get(base + "/api/v1/user", headers=bearer(demo)).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_config_endpoint_validates(emu):
    base = emu.base_url
    current = httpx.get(base + "/_emulator/config").json()
    assert current["rate_limit"] == 100 and current["base_url"] == base and current["storage_url"] == emu.storage_url
    for bad in ({"nope": 1}, {"rate_limit": "many"}, {"port": 80}, {"cut_queue": [-1]}, {"chunked": 1}):
        assert httpx.post(base + "/_emulator/config", json=bad).status_code == 400
    assert httpx.post(base + "/_emulator/config", content=b"{").status_code == 400
    assert configure(base, delay_ms=0, cut_queue=[5])["cut_queue"] == [5]
    httpx.post(base + "/_emulator/reset")
    assert httpx.get(base + "/_emulator/config").json()["cut_queue"] == []
    assert httpx.get(base + "/_emulator/requests").json() == [] and outbox(base) == []


def test_the_request_log_holds_no_secrets(emu):
    base = emu.base_url
    key = api_key(base)
    tokens = httpx.post(base + "/api/v1/auth/session", json={"api_key": key}).json()
    httpx.post(base + "/api/v1/auth/session/refresh", json=tokens)
    log = httpx.get(base + "/_emulator/requests").text
    for secret in (key, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in log
    entry = json.loads(log)[-1]
    assert {"method", "path", "origin", "status", "has_authorization", "range"} <= set(entry)


def test_index_page_and_unknown_paths(emu):
    assert httpx.get(emu.base_url + "/").status_code == 200
    missing = httpx.get(emu.base_url + "/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


# -- the command line -------------------------------------------------------------------

def test_cli_prints_the_base_url_first_and_exits_cleanly(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tonebridge.dev.emulator.command import emulator_command; emulator_command()",
         "--port", "0", "--rate-limit", "50", "--token-ttl", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and not base.endswith("/")
        assert httpx.get(base, timeout=5).status_code == 200
        config = httpx.get(base + "/_emulator/config").json()
        assert (config["rate_limit"], config["token_ttl"]) == (50, 60)
        code_page(base)  # the code is "emailed" on stdout, flushed at once
        assert proc.stdout.readline().startswith("otp: demo@example.com ")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err, err
    finally:
        proc.kill()
        proc.wait()


def test_cli_stops_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tonebridge.dev.emulator.command import emulator_command; emulator_command()",
         "--port", "0", "--chunked", "--no-rotate", "--storage-redirect", "--bench-files"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().strip()
        config = httpx.get(base + "/_emulator/config", timeout=5).json()
        assert config["chunked"] and not config["rotate_refresh"] and config["storage_redirect"]
        assert info(base, 1084)["size"] > 2_000_000  # --bench-files: the 2 MB bench IR is there
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0 and "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_a_model_update_publishes_new_bytes_and_updated_at():
    with EmulatorServer(dialect="v1") as fresh:  # its own: the update changes the catalogue
        check_update(fresh.base_url)


def check_update(base):
    before = httpx.get(base + "/_emulator/models/1008", timeout=5).json()
    after = httpx.post(base + "/_emulator/models/1008/update", timeout=5).json()
    assert after["sha256"] != before["sha256"] and after["filename"] == before["filename"]
    assert abs(after["size"] - before["size"]) < before["size"] // 10  # the same kind of file
    assert httpx.post(base + "/_emulator/models/999999/update", timeout=5).status_code == 404


def test_cli_serves_https_with_a_given_certificate(tmp_path):
    import ssl

    import trustme

    ca = trustme.CA()
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tonebridge.dev.emulator.command import emulator_command; emulator_command()",
         "--port", "0", "--tls-cert", str(tmp_path / "both.pem")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("https://localhost:")
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        assert httpx.get(base + "/api/v1/user", verify=trust, timeout=5).status_code == 401
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not know this one
            httpx.get(base + "/api/v1/user", timeout=5)
    finally:
        proc.terminate()
        proc.wait(10)
