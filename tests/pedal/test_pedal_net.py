"""The pedal's HTTP client (firmware/pedal/net.py) under the real MicroPython unix port,
against real sockets: TLS with pinned test CAs, redirects, and broken servers.

Each test writes its cases to a file, runs tests/pedal/net_cases.py once in micropython
(heap capped) and reads one JSON result per case.  Every case also reports how many
sockets the client still holds: it must be 0 after success and after every error.
"""

import json
import os
import ssl
import subprocess
import sys

import pytest
import trustme
from signin_helpers import RawServer
from signin_helpers import raw_response as _raw

from tonebridge.boards.build import build as build_firmware

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tests", "pedal", "net_cases.py")
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
HEAP = "256k"  # the client, the core and the case runner, loaded as bytecode
NAM_HEAD = b'{"version": "0.5.4", "architecture": "WaveNet", "config": {"layers": []}, "weights": ['


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("unix_sim"))
    build_firmware("unix_sim", out)
    return out


def raw_response(status, headers, body=b""):
    return _raw(status, list(headers.items()), body)


def run_cases(build, tmp_path, cases):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    env = dict(os.environ, MICROPYPATH=".frozen:" + os.path.join(build, "lib"))
    done = subprocess.run([MICROPYTHON, "-X", "heapsize=" + HEAP, SCRIPT, str(path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    results = {}
    for line in done.stdout.splitlines():
        item = json.loads(line)
        results[item["name"]] = item
    assert sorted(results) == sorted(c["name"] for c in cases)
    for item in results.values():
        assert item["open"] == 0, item  # no leaked socket, whatever happened
        assert "ACCESS-SECRET" not in json.dumps(item)  # never in a message
    return results


# -- TLS --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    server_cert = ca.issue_cert("localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    paths = {}
    for name, authority in (("pinned", ca), ("other", other)):
        paths[name] = str(folder / (name + ".der"))
        with open(paths[name], "wb") as f:
            f.write(ssl.PEM_cert_to_DER_cert(authority.cert_pem.bytes().decode()))
    return context, paths


def test_tls_verifies_against_the_pinned_ca_and_the_host_name(build, tmp_path, tls_setup):
    context, cas = tls_setup
    body = b'{"ok": true}' * 500
    model = NAM_HEAD + b"0.5, " * 60000 + b"1]}"  # ~300 KB: many TLS records

    def respond(request):
        if request.target.endswith(".nam"):
            return raw_response(200, {"Content-Length": str(len(model))}, model)
        return raw_response(200, {"Content-Type": "application/json"}, body)

    with RawServer(respond, tls=context, host="localhost") as good, \
            RawServer(respond, tls=context, host="127.0.0.1") as wrong_name:
        results = run_cases(build, tmp_path, [
            {"name": "pinned", "kind": "get", "url": good.base_url + "/x", "ca": cas["pinned"]},
            {"name": "pinned-download", "kind": "download", "api": good.base_url + "/api/v1",
             "url": good.base_url + "/m.nam", "ca": cas["pinned"]},
            {"name": "untrusted", "kind": "get", "url": good.base_url + "/x", "ca": cas["other"]},
            {"name": "wrong-host", "kind": "get", "url": wrong_name.base_url + "/x", "ca": cas["pinned"]},
            {"name": "no-ca", "kind": "get", "url": good.base_url + "/x"},
        ])
    assert results["pinned"].get("status") == 200, results["pinned"]
    assert results["pinned"]["bytes"] == len(body)
    import hashlib

    assert results["pinned-download"].get("sha256") == hashlib.sha256(model).hexdigest(), results["pinned-download"]
    for name in ("untrusted", "wrong-host", "no-ca"):
        assert results[name]["error"] == "TrustError", results[name]
        assert "certificate" in results[name]["message"] or "CA" in results[name]["message"]
    assert "not correctly signed" in results["untrusted"]["message"]
    assert "CN" in results["wrong-host"]["message"] or "name" in results["wrong-host"]["message"]


def test_a_failed_tls_download_is_not_retried(build, tmp_path, tls_setup):
    context, cas = tls_setup
    hits = []

    def respond(request):
        hits.append(request.target)
        return raw_response(200, {"Content-Length": "2"}, b"{}")

    with RawServer(respond, tls=context, host="localhost") as server:
        results = run_cases(build, tmp_path, [
            {"name": "dl", "kind": "download", "api": server.base_url + "/api/v1", "url": server.base_url + "/f.nam",
             "ca": cas["other"], "failures": 5},
        ])
    assert results["dl"]["error"] == "TrustError"
    assert hits == []  # the handshake failed: no request ever reached the server


# -- redirects ----------------------------------------------------------------------------

def test_a_cross_origin_redirect_does_not_receive_authorization(build, tmp_path):
    seen = {}

    def storage(request):
        seen["storage"] = request.headers
        return raw_response(200, {"Content-Type": "application/json"}, b'{"username": "x"}')

    with RawServer(storage) as other:
        def api(request):
            seen["api"] = request.headers
            return raw_response(302, {"Location": other.base_url + "/signed?sig=abc"})

        with RawServer(api) as server:
            results = run_cases(build, tmp_path, [
                {"name": "hop", "kind": "api", "api": server.base_url + "/api/v1", "path": "/user"},
            ])
    assert results["hop"]["json"] == {"username": "x"}
    assert seen["api"]["authorization"] == "Bearer ACCESS-SECRET"
    assert "authorization" not in seen["storage"]


def test_a_redirect_loop_stops_after_five_hops(build, tmp_path):
    hits = []

    def loop(request):
        hits.append(request.target)
        return raw_response(302, {"Location": "/api/v1/loop%d" % len(hits)})

    with RawServer(loop) as server:
        results = run_cases(build, tmp_path, [
            {"name": "loop", "kind": "api", "api": server.base_url + "/api/v1", "path": "/user"},
        ])
    assert results["loop"]["error"] == "RedirectError"
    assert "too many redirects" in results["loop"]["message"]
    assert len(hits) == 6  # the request and five redirects followed


def test_https_to_http_redirect_is_refused(build, tmp_path, tls_setup):
    context, cas = tls_setup
    with RawServer(lambda r: raw_response(200, {}, b"{}")) as plain:
        with RawServer(lambda r: raw_response(302, {"Location": plain.base_url + "/x"}), tls=context,
                       host="localhost") as secure:
            results = run_cases(build, tmp_path, [
                {"name": "down", "kind": "api", "api": secure.base_url + "/api/v1", "path": "/user",
                 "ca": cas["pinned"]},
            ])
    assert results["down"]["error"] == "RedirectError" and "plain http" in results["down"]["message"]


# -- broken servers --------------------------------------------------------------------------

BROKEN = {
    "/truncated": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    "/truncated-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{\"username\": \"x\"",
    "/bad-json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"user\": ",
    "/huge-head": b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 5000 + b"\r\n\r\n{}",
    "/bad-status": b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}",
    "/bad-header": b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 2\r\n\r\n{}",
    "/bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n{}",
    "/bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "/empty": b"",
    "/chunked-ok": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{\"use\r\n"
                   b"e\r\nrname\": \"ok\"}\r\n0\r\nX-Trailer: 1\r\n\r\n",
    "/inject": b"HTTP/1.1 302 Found\r\nLocation: /x HTTP/1.1\r\nX-Evil: 1\r\nContent-Length: 0\r\n\r\n",
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"username\": \"c\"}",
}


def test_broken_responses_give_clear_errors_and_leak_no_socket(build, tmp_path):
    with RawServer(lambda request: BROKEN[request.target.split("?")[0].replace("/api/v1", "")]) as server:
        api = server.base_url + "/api/v1"
        results = run_cases(build, tmp_path, [
            {"name": path, "kind": "api", "api": api, "path": path} for path in sorted(BROKEN)
        ])
    expected = {
        "/truncated": ("TransportError", "broke mid-response"),
        "/truncated-chunked": ("TransportError", "broke mid-response"),
        "/bad-json": ("ProtocolError", "malformed JSON"),
        "/huge-head": ("ProtocolError", "larger than 4096 bytes"),
        "/bad-status": ("ProtocolError", "malformed status line"),
        "/bad-header": ("ProtocolError", "malformed header line"),
        "/bad-length": ("ProtocolError", "bad Content-Length"),
        "/bad-chunk": ("ProtocolError", "malformed chunked body"),
        "/empty": ("TransportError", "without a complete response"),
        "/inject": ("ProtocolError", "spaces or line breaks"),
    }
    for path, (error, words) in expected.items():
        assert results[path].get("error") == error and words in results[path]["message"], results[path]
        assert "?" not in results[path]["message"]  # only the origin is named
    assert results["/chunked-ok"]["json"] == {"username": "ok"}
    assert results["/continue"].get("json") == {"username": "c"}, results["/continue"]


def test_an_unreachable_server_and_a_silent_one_fail_in_time(build, tmp_path):
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts (the kernel does) but never answers
    try:
        results = run_cases(build, tmp_path, [
            {"name": "refused", "kind": "get", "url": "http://127.0.0.1:%d/x" % port},
            {"name": "silent", "kind": "get", "url": "http://127.0.0.1:%d/x" % silent.getsockname()[1],
             "timeout_ms": 500, "deadline_ms": 800},
        ])
    finally:
        silent.close()
    assert results["refused"]["error"] == "TransportError" and "cannot reach" in results["refused"]["message"]
    assert results["silent"]["error"] == "TransportError"
    assert "answer" in results["silent"]["message"]


def test_downloads_verify_and_resume_across_cuts(build, tmp_path):
    body = NAM_HEAD + b"0.125, " * 3000 + b"1]}"
    calls = []

    def respond(request):
        calls.append(request.headers.get("range"))
        start = 0
        if request.headers.get("range"):
            start = int(request.headers["range"].split("=")[1].rstrip("-"))
        part = body[start:]
        headers = {"Content-Length": str(len(part)), "ETag": '"v1"'}
        status = 200
        if start:
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(body) - 1, len(body))
        cut = part[: 5000] if len(calls) < 3 else part  # the first two bodies are cut short
        return raw_response(status, headers, cut)

    with RawServer(respond) as server:
        results = run_cases(build, tmp_path, [
            {"name": "dl", "kind": "download", "api": server.base_url + "/api/v1", "url": server.base_url + "/m.nam",
             "failures": 4},
        ])
    import hashlib

    assert results["dl"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert results["dl"]["bytes"] == len(body)
    assert calls == [None, "bytes=5000-", "bytes=10000-"]


# -- slow and endless servers -------------------------------------------------------------

def test_a_dripping_server_is_given_up_on_by_deadline_and_by_rate(build, tmp_path):
    """A byte every 0.3 s never trips the io timeout; the deadline (an API reply) and the
    rate floor (any body) do."""
    from hostile_api import HostileApi

    with HostileApi("drip", drip_s=0.3) as api, HostileApi("drip-file", drip_s=0.3) as files:
        results = run_cases(build, tmp_path, [
            {"name": "deadline", "kind": "api", "api": api.api, "path": "/tones/favorited",
             "deadline_ms": 1000, "limits": {"rate_window_ms": 60000}},
            {"name": "rate", "kind": "api", "api": api.api, "path": "/tones/favorited",
             "limits": {"rate_window_ms": 1000, "min_rate_bytes": 64}},
            {"name": "download-rate", "kind": "download", "api": files.api, "url": files.base_url + "/files/m.nam",
             "failures": 5, "limits": {"rate_window_ms": 1000, "min_rate_bytes": 64}},
            {"name": "download-deadline", "kind": "download", "api": files.api,
             "url": files.base_url + "/files/m.nam", "failures": 5,
             "limits": {"download_deadline_ms": 1000, "min_rate_bytes": 0}},
        ])
        api.stop_endless()
        files.stop_endless()
        downloads = len(files.requests_to("/files/"))
    deadline, rate = results["deadline"], results["rate"]
    assert deadline["error"] == "TransportError", deadline
    assert "did not send a complete reply within 1 s" in deadline["message"] and deadline["ms"] < 3000
    assert rate["error"] == "TransportError", rate
    assert "sent too slowly (fewer than 64 bytes in 1 s)" in rate["message"] and rate["ms"] < 3000
    # a download resumes a slow body once, then gives up: the second slow body ends it
    for name in ("download-rate", "download-deadline"):
        result = results[name]
        assert result["error"] == "DownloadError" and "2 times; gave up" in result["message"], result
        assert result["ms"] < 6000, result
    assert "sent too slowly" in results["download-rate"]["message"]
    assert "did not send a complete reply within 1 s" in results["download-deadline"]["message"]
    assert downloads == 4  # two bodies each


def test_endless_trailers_long_chunk_lines_and_framing_floods_are_protocol_errors(build, tmp_path):
    from hostile_api import HostileApi

    flood = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"1;" + b"x" * 200 + b"\r\n{\r\n") * 40
    with HostileApi("endless-trailers") as trailers, HostileApi("huge-line") as long_line, \
            RawServer(lambda request: flood) as framing:
        results = run_cases(build, tmp_path, [
            {"name": "trailers", "kind": "api", "api": trailers.api, "path": "/tones/favorited"},
            {"name": "line", "kind": "api", "api": long_line.api, "path": "/tones/favorited"},
            {"name": "framing", "kind": "api", "api": framing.base_url + "/api/v1", "path": "/x"},
        ])
        trailers.stop_endless()
    assert results["trailers"]["error"] == "ProtocolError", results["trailers"]
    assert "sent more than 16 trailer lines" in results["trailers"]["message"]
    assert results["line"]["error"] == "ProtocolError"
    assert "a line longer than 256 bytes" in results["line"]["message"]
    assert results["framing"]["error"] == "ProtocolError"
    assert "more chunk framing than data" in results["framing"]["message"]
