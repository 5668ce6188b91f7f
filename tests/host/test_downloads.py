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
FILE = (b'{"version": "0.5.4", "architecture": "WaveNet", "config": {"layers": []}, "weights": ['
        + b"0.125, " * 40 + b"1.0]}")


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


# -- caps: nothing a server sends fills the disk ------------------------------------------

def ranged_file(request):
    """FILE, honouring Range (so a second run resumes)."""
    start = int(request.headers["range"].split("=")[1].rstrip("-")) if request.headers.get("range") else 0
    if not start:
        return good_file(request)
    return raw_response(206, [("Content-Range", "bytes %d-%d/%d" % (start, len(FILE) - 1, len(FILE))),
                              ("Content-Length", len(FILE) - start), ("Connection", "close")], FILE[start:])


def test_a_download_announced_larger_than_any_model_is_refused_before_a_byte_is_written(tmp_path):
    def huge(request):
        return raw_response(200, [("Content-Length", 100 * 1024 ** 3), ("Connection", "close")], FILE)

    with serve(huge) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, out = run_download(tmp_path, server.base_url, home)
    assert result.exit_code == EXIT_INTEGRITY, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "the server announced 102400.0 MB, more than any model file (at most 64.0 MB); refused" in result.stderr
    assert "the partial file was removed" in result.stderr
    assert os.listdir(out) == []


def test_a_body_of_unknown_length_is_stopped_at_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "MAX_MODEL_FILE_BYTES", 64 * 1024)
    sent = []

    def endless(request):  # chunked, no last chunk: 1 MB of it, then the connection closes
        piece = b"1000\r\n" + b" " * 4096 + b"\r\n"
        sent.append(256 * len(piece))
        return raw_response(200, [("Transfer-Encoding", "chunked"), ("Connection", "close")], piece * 256)

    with serve(endless) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, out = run_download(tmp_path, server.base_url, home)
    assert result.exit_code == EXIT_INTEGRITY, result.output
    assert "the server sent more than 64.0 KB, more than any model file; stopped" in result.stderr
    assert "the partial file was removed" in result.stderr
    assert os.listdir(out) == [] and len(sent) == 1  # not retried


def test_a_download_that_does_not_fit_on_the_disk_is_refused(tmp_path, monkeypatch):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(downloads.shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9 - 100, 100))
    with serve(good_file) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, out = run_download(tmp_path, server.base_url, home)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1
    assert "not enough space on %s: need %d bytes, 100 bytes free" % (out, len(FILE)) in result.stderr
    assert os.listdir(out) == []


class FillsUp:
    """A .part whose disk fills up after `room` bytes: writes past it raise ENOSPC."""

    def __init__(self, file, room):
        self.file = file
        self.room = room

    def write(self, data):
        import errno

        take = min(len(data), self.room - self.file.tell())
        if take > 0:
            self.file.write(bytes(data[:take]))
        if take < len(data):
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return take

    def __getattr__(self, name):
        return getattr(self.file, name)


def test_a_disk_that_fills_up_mid_download_keeps_the_part_and_says_which_disk(tmp_path, monkeypatch):
    real_open = downloads._open_part
    monkeypatch.setattr(downloads, "_open_part", lambda path: FillsUp(real_open(path), 100))
    with serve(ranged_file) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, out = run_download(tmp_path, server.base_url, home)
        assert result.exit_code == 1, result.output
        line = result.stderr
        assert line.count("\n") == 1 and "Traceback" not in result.output
        part = out / "broken.nam.part"
        assert "the disk of %s filled up (" % out in line and " free); 100 bytes are kept in %s" % part in line
        assert "run the same command again to resume" in line
        assert part.stat().st_size == 100
        monkeypatch.setattr(downloads, "_open_part", real_open)  # space was freed: the next run resumes
        again, out = run_download(tmp_path, server.base_url, home)
        files = [r for r in server.requests if r.path == "/files/broken.nam"]
    assert again.exit_code == 0, again.output
    assert (out / "broken.nam").read_bytes() == FILE and sorted(os.listdir(out)) == ["broken.nam"]
    assert files[-1].headers.get("range") == "bytes=100-"


def test_a_download_whose_head_drips_is_given_up_on_at_the_deadline(tmp_path, monkeypatch):
    """The direct path reads the head through a Meter: a byte every 0.1 s never trips the
    read timeout, the head's deadline does."""
    from hostile_api import HostileApi

    from tonebridge.api import transport
    from tonebridge.api.transport import HttpxDriver
    from tonecore.errors import TransportError
    from tonecore.http import Request

    monkeypatch.setattr(transport, "REQUEST_DEADLINE_S", 1.0)
    with HostileApi("drip-head-file", drip_s=0.1) as api:
        driver = HttpxDriver()
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            driver.send(Request("GET", api.base_url + "/files/clean.nam", stream=True))
        took = time.monotonic() - started
        api.stop_endless()
        driver.close()
    assert "127.0.0.1:%s did not answer within 1 s" % api.base_url.rsplit(":", 1)[1] in str(caught.value)
    assert 0.9 < took < 2.5


@pytest.mark.parametrize("framing", ["close", "length", "chunked"])
def test_a_large_body_arrives_whole_in_every_framing(tmp_path, framing):
    """Many reads of the direct path: to the close, by Content-Length, chunked."""
    import hashlib

    big = FILE[:-5] + b", 0.25" * 200000 + b"1.0]}"  # ~1.2 MB: many socket reads

    def respond(request):
        if framing == "close":
            return raw_response(200, [("Connection", "close")], big)
        if framing == "length":
            return raw_response(200, [("Content-Length", len(big)), ("Connection", "close")], big)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 70000]), big[i:i + 70000])
                          for i in range(0, len(big), 70000))
        return raw_response(200, [("Transfer-Encoding", "chunked"), ("Connection", "close")],
                            chunks + b"0\r\nX-Trailer: 1\r\n\r\n")

    with serve(respond) as server:
        home = signed_in_home(tmp_path, server.base_url)
        result, out = run_download(tmp_path, server.base_url, home)
    assert result.exit_code == 0, result.output
    assert hashlib.sha256((out / "broken.nam").read_bytes()).digest() == hashlib.sha256(big).digest()
