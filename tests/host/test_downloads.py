"""Downloads against a raw-socket server whose lengths lie: caught, nothing installed."""

import json
import os
import ssl
import threading
import time

import pytest

from click.testing import CliRunner
from signin_helpers import RawServer, raw_response

from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_INTEGRITY, EXIT_NETWORK
from tonebridge.api import downloads
from tonebridge.api.downloads import BackgroundSync, safe_filename, target_path
from tonebridge.api.token_store import TokenStore
from tonebridge.api.transport import monotonic_ms
from tonecore.session import Tokens

MODEL_ID = 7
TONE_ID = 1
FILE = b'{"version": "0.5.4", "architecture": "WaveNet", "weights": [' + b"0.125, " * 40 + b"1.0]}"


def serve(file_response, **tls):
    """A RawServer with /api/v1/models?toneId=1 listing one model whose file is broken."""

    def respond(request):
        if request.path == "/api/v1/models":
            model = {"id": MODEL_ID, "name": "Broken", "size": "standard", "tone_id": TONE_ID,
                     "model_url": server.base_url + "/files/broken.nam"}
            body = json.dumps({"data": [model], "page": 1, "pageSize": 100, "total": 1, "totalPages": 1}).encode()
            return raw_response(200, [("Content-Type", "application/json"), ("Content-Length", len(body))], body)
        if request.path == "/files/broken.nam":
            return file_response(request)
        return raw_response(404, [("Content-Length", 0)])

    server = RawServer(respond, **tls)
    return server


def signed_in_home(tmp_path, base_url):
    home = tmp_path / "home"
    tokens = Tokens("ACCESS-SECRET", "REFRESH-SECRET", 3600, monotonic_ms() + 3600000)
    TokenStore(str(home)).save(base_url + "/api/v1", tokens, monotonic_ms(), time.time())
    return home


def run_download(tmp_path, base_url, home):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["--api", base_url, "download", str(MODEL_ID), "--tone", str(TONE_ID), "-o", str(out) + "/"],
        env={"TONEBRIDGE_HOME": str(home)},
    )
    return result, out


def test_body_longer_than_announced_is_an_integrity_error(tmp_path):
    # 206 announcing bytes 0-99/100, then 150 bytes until the connection closes.
    def longer(request):
        return raw_response(206, [("Content-Range", "bytes 0-99/100"), ("Connection", "close")], FILE[:150])

    with serve(longer) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, out = run_download(tmp_path, server.base_url, home)
    assert result.exit_code == EXIT_INTEGRITY, result.output
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("tonebridge: error: ")
    assert "more than the 100 bytes it announced" in result.stderr
    assert "partial file was removed" in result.stderr
    assert os.listdir(out) == []  # nothing installed, no .part or sidecar left
    assert "Traceback" not in result.output


def test_content_length_larger_than_the_body_is_retried_then_reported(tmp_path):
    # Announces 100 bytes more than it sends, and ignores Range: every attempt restarts.
    def shorter(request):
        return raw_response(200, [("Content-Length", len(FILE) + 100), ("Connection", "close")], FILE)

    with serve(shorter) as server:
        home = signed_in_home(tmp_path, server.base_url)
        started = time.monotonic()
        result, out = run_download(tmp_path, server.base_url, home)
        files = [r for r in server.requests if r.path == "/files/broken.nam"]
    assert result.exit_code == EXIT_NETWORK, result.output
    assert time.monotonic() - started < 10
    line = result.stderr
    assert line.count("\n") == 1
    assert "ignored the resume request" in line
    assert "the connection ended at byte %d of %d" % (len(FILE), len(FILE) + 100) in line
    assert "broken.nam.part" in line and "run the same command again to resume" in line
    assert not (out / "broken.nam").exists()
    assert (out / "broken.nam.part").stat().st_size == len(FILE)
    # the retries asked to resume from what was received
    assert files[0].headers.get("range") is None
    assert all(r.headers.get("range") == "bytes=%d-" % len(FILE) for r in files[1:])
    assert 2 <= len(files) <= 5


def test_tokens_are_sent_but_never_printed(tmp_path):
    def longer(request):
        return raw_response(206, [("Content-Range", "bytes 0-99/100"), ("Connection", "close")], FILE[:150])

    with serve(longer) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, _ = run_download(tmp_path, server.base_url, home)
        assert server.requests[0].headers["authorization"] == "Bearer ACCESS-SECRET"
    assert "SECRET" not in result.output and "SECRET" not in result.stderr


def test_target_path_and_file_names(tmp_path):
    assert target_path(None, "a.nam") == os.path.abspath("a.nam")
    assert target_path(str(tmp_path), "a.nam") == str(tmp_path / "a.nam")
    assert target_path(str(tmp_path / "new") + "/", "a.nam") == str(tmp_path / "new" / "a.nam")
    assert target_path(str(tmp_path / "b.nam"), "a.nam") == str(tmp_path / "b.nam")
    assert safe_filename("..", 5) == "model-5.bin"
    assert safe_filename("a\\b.nam", 5) == "model-5.nam"
    assert safe_filename("clean.nam", 5) == "clean.nam"


# -- https: downloads go through http.client (readinto), listings through httpx ---------

def good_file(request):
    return raw_response(200, [("Content-Length", len(FILE)), ("Connection", "close")], FILE)


def tls_server(tmp_path, monkeypatch, cert_names, trusted=True):
    """A TLS RawServer at https://localhost:PORT with a certificate for `cert_names`;
    SSL_CERT_FILE names its CA when `trusted`, else another CA."""
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*cert_names).configure_cert(context)
    trust = ca if trusted else trustme.CA()
    trust.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    return serve(good_file, tls=context, host="localhost")


def test_https_download_verifies_against_the_trusted_ca(tmp_path, monkeypatch):
    with tls_server(tmp_path, monkeypatch, ["localhost"]) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, out = run_download(tmp_path, server.base_url, home)
        files = [r for r in server.requests if r.path == "/files/broken.nam"]
    assert result.exit_code == 0, result.output
    assert (out / "broken.nam").read_bytes() == FILE
    assert files[0].headers["authorization"] == "Bearer ACCESS-SECRET"
    assert files[0].headers["connection"] == "close"  # the http.client path, not httpx


@pytest.mark.parametrize("names, trusted", [(["localhost"], False), (["elsewhere.example"], True)],
                         ids=["untrusted-ca", "wrong-hostname"])
def test_https_download_refuses_a_bad_certificate(tmp_path, monkeypatch, names, trusted):
    # The listing goes through httpx with the same trust store: it must fail the same way.
    with tls_server(tmp_path, monkeypatch, names, trusted) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, out = run_download(tmp_path, server.base_url, home)
    assert result.exit_code == EXIT_NETWORK, result.output
    assert "certificate" in result.stderr.lower()
    assert "Traceback" not in result.output
    assert not out.exists() or os.listdir(out) == []


def test_https_direct_path_refuses_a_bad_certificate(tmp_path, monkeypatch):
    """The download itself (not only the listing) checks the certificate."""
    from tonebridge.api.transport import Connection
    from tonebridge.api.downloads import ModelRef, download
    from tonecore.errors import TrustError

    with tls_server(tmp_path, monkeypatch, ["localhost"], trusted=False) as server:
        home = signed_in_home(tmp_path, server.base_url)
        with Connection(server.base_url + "/api/v1", TokenStore(str(home))) as conn:
            ref = ModelRef(MODEL_ID, TONE_ID, server.base_url + "/files/broken.nam", "Broken", "broken.nam")
            with pytest.raises(TrustError) as caught:
                download(conn, ref, str(tmp_path / "out" / "broken.nam"))
    assert "certificate" in str(caught.value).lower()
    assert not (tmp_path / "out" / "broken.nam").exists()


def test_background_sync_starts_only_past_its_threshold(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(downloads, "_datasync", lambda fd: synced.append((fd, threading.current_thread().name)))
    with open(tmp_path / "small.part", "wb") as f, BackgroundSync(f, every=1000) as sync:
        f.write(b"x" * 999)
        sync.wrote(999)
    assert sync._thread is None and synced == []  # a small file: no thread, no early sync
    with open(tmp_path / "big.part", "wb") as f, BackgroundSync(f, every=1000) as sync:
        for _ in range(3):
            f.write(b"x" * 600)
            sync.wrote(600)
        fd, thread = f.fileno(), sync._thread
    # the sync asked for at 1200 bytes is done, in the helper, which is joined on leaving
    assert synced == [(fd, "tonebridge-sync")] and not thread.is_alive()
    sync.check()  # no error to pass on


def test_server_named_files_keep_a_model_extension_and_no_leading_dot():
    from tonebridge.api.downloads import safe_filename

    assert safe_filename("clean.nam", 7) == "clean.nam"
    assert safe_filename("cab.WAV", 7) == "cab.WAV"
    for hostile, wanted in ((".zshenv", "model-7.bin"), ("notes.txt", "model-7.bin"), ("../x.nam", "model-7.nam"),
                            (".hidden.nam", "model-7.nam"), ("a\x1b]0;pwned\x07.nam", "model-7.nam"),
                            ("", "model-7.bin"), ("x" * 300 + ".nam", "model-7.nam")):
        assert safe_filename(hostile, 7) == wanted, hostile


def test_a_symlink_planted_as_the_part_file_is_refused(tmp_path):
    from tonebridge.api.downloads import FileConflict, _open_part

    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (tmp_path / "m.nam.part").symlink_to(victim)
    with pytest.raises(FileConflict):
        _open_part(str(tmp_path / "m.nam.part"))
    assert victim.read_bytes() == b"keep me"
