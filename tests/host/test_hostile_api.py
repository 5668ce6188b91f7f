"""The `tonebridge` CLI, as a real subprocess, against a hostile TONE3000 server
(tests/helpers/hostile_api.py): every mode ends in a clear one-line error or a refusal
(no traceback), nothing is written outside the output folder and the config home, no
token reaches another origin, and no escape sequence of the server's reaches the terminal.

The limits that make the slow modes slow (transport.REQUEST_DEADLINE_S, the download
rate floor, downloads.MAX_MODEL_FILE_BYTES, the core's retry backoff) are set small in the
subprocess, so that a drip takes a second or two; `make soak` (TONEBRIDGE_SOAK=1) runs
the same cases with the real numbers: a byte every 14 s, a 64 MB flood.
"""

import json
import os
import ssl
import subprocess
import sys
import time

import pytest
from hostile_api import CONTROL, DANGEROUS_NAMES, ESCAPE_MESSAGE, MODEL_ID, TOKEN, HostileApi

from tonebridge.api.token_store import Profile, TokenStore
from tonebridge.api.transport import monotonic_ms
from tonecore.session import Tokens

SOAK = os.environ.get("TONEBRIDGE_SOAK") == "1"
PATCHES = {} if SOAK else {  # module attribute -> value, set in the CLI's process before it runs
    "tonebridge.api.transport.REQUEST_DEADLINE_S": 2.0,
    "tonebridge.api.transport.MIN_BODY_BYTES": 64,
    "tonebridge.api.transport.RATE_WINDOW_S": 1.0,
    "tonebridge.api.downloads.MAX_MODEL_FILE_BYTES": 1024 * 1024,
    "tonecore.download.BACKOFF_START_MS": 20,
}
DRIP_S = 14.0 if SOAK else 0.3
RUN_S = 600 if SOAK else 60  # no case may take longer
DOWNLOAD = ["download", str(MODEL_ID), "--tone", "1", "-o", "out/"]
CLI = """
import importlib, json, sys
for name, value in json.loads(sys.argv[1]).items():
    module, attribute = name.rsplit(".", 1)
    setattr(importlib.import_module(module), attribute, value)
from tonebridge.cli import main
sys.exit(main(sys.argv[2:]))
"""

# mode -> (command, exit code, words in the error line)
REFUSED = {
    "deep-json": (["tones"], 5, "malformed JSON from"),
    "huge-header": (["tones"], 5, "sent a response head or chunk line larger than 16 KB"),
    "many-headers": (["tones"], 5, "sent a response head with more than 100 headers"),
    "huge-line": (["tones"], 5, "larger than 16 KB"),
    "endless-chunked": (["tones"], 5, "sent a reply larger than 4 MB, the most an API reply may be; refused"),
    "drip": (["tones"], 4, "did not send a complete reply within %d s" % (60 if SOAK else 2)),
    "endless-trailers": (["tones"], 5, "larger than 16 KB"),
    "retry-after-nan": (["tones"], 5, "rate limited by TONE3000 (HTTP 429): slow down; try again in a minute"),
    "error-escape": (["tones"], 5, "access denied (HTTP 403):"),
    "drip-file": (DOWNLOAD, 4, "sent too slowly (fewer than %s bytes in %d s), 2 times; gave up"
                  % ((32768, 30) if SOAK else (64, 1))),
    "endless-chunked-file": (DOWNLOAD, 6, "the server sent more than %s, more than any model file; stopped"
                             % ("64.0 MB" if SOAK else "1.0 MB")),
    "huge-line-file": (DOWNLOAD, 4, "sent a chunked body with a line longer than 4096 bytes"),
    "endless-trailers-file": (DOWNLOAD, 4, "sent more than 32 trailer lines after a chunked body"),
}


class Case:
    """A home signed in to the hostile API, a folder to run in, and the CLI."""

    def __init__(self, tmp_path, api, env=None):
        self.root = tmp_path
        self.api = api
        self.work = tmp_path / "work"
        self.work.mkdir()
        home = tmp_path / "home"
        store = TokenStore(str(home))
        store.profile = Profile("otp", None, "current")
        store.save(api.api, Tokens(TOKEN, "REFRESH-SECRET", 3600, monotonic_ms() + 3600000), monotonic_ms(),
                   time.time())
        self.env = dict(os.environ, TONEBRIDGE_HOME=str(home), TONEBRIDGE_API=api.api, HOME=str(tmp_path / "user"),
                        TONEBRIDGE_CACHE=str(tmp_path / "cache"), XDG_CACHE_HOME=str(tmp_path / "user"),
                        XDG_CONFIG_HOME=str(tmp_path / "user"), COLUMNS="200", TERM="xterm")
        self.env.update(env or {})
        self.env.pop("TONEBRIDGE_DEBUG", None)
        self.before = files_under(tmp_path)

    def run(self, *args):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", CLI, json.dumps(PATCHES)] + list(args), cwd=str(self.work),
                              env=self.env, capture_output=True, timeout=RUN_S)
        done.seconds = time.monotonic() - started
        out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
        for char in CONTROL:  # nothing of the server's reaches the terminal as a control
            assert char not in out and char not in err, (args, out, err)
        assert TOKEN not in out + err and "Traceback" not in err, (args, err)
        if done.returncode:
            assert err.startswith("tonebridge: error: ") and err.count("\n") == 1, (args, err)
        done.out, done.err = out, err
        return done

    def new_files(self):
        """Files written since the start, as paths relative to the test's folder."""
        return sorted(os.path.relpath(path, self.root) for path in set(files_under(self.root)) - set(self.before))

    def check_after(self):
        """Nothing outside out/ and the config home; no token to any origin but the API's."""
        strays = [path for path in self.new_files() if not path.startswith(("work/out/", "home/"))]
        assert not strays, strays
        assert self.api.authorized("foreign") == [] and self.api.authorized("plain") == []


def files_under(folder):
    found = []
    for root, _, names in os.walk(str(folder)):
        found += [os.path.join(root, name) for name in names]
    return found


@pytest.mark.parametrize("mode", sorted(REFUSED))
def test_a_hostile_reply_is_a_clear_error(mode, tmp_path):
    args, code, words = REFUSED[mode]
    with HostileApi(mode, drip_s=DRIP_S) as api:
        case = Case(tmp_path, api)
        done = case.run(*args)
        api.stop_endless()
    assert done.returncode == code and words in done.err, (done.returncode, done.err)
    if mode == "error-escape":  # the server's words, plain: escapes gone, markup as text
        assert "]0;pwned [bold red]denied[/] <b>" in done.err and ESCAPE_MESSAGE not in done.err
    if mode.endswith("-file"):  # what is kept is the .part (resumable) in the output folder
        assert not os.path.exists(str(case.work / "out" / "clean.nam"))
        assert set(os.listdir(str(case.work / "out"))) <= {"clean.nam.part", "clean.nam.part.json"}
    assert done.seconds < (RUN_S if SOAK else 20), done.seconds
    case.check_after()


def test_markup_and_escapes_from_the_server_are_shown_as_text(tmp_path):
    with HostileApi("markup") as api:
        case = Case(tmp_path, api)
        tones = case.run("tones")
        models = case.run("models", "1")
        user = case.run("whoami", "--check")
        as_json = case.run("tones", "--json")
        download = case.run(*DOWNLOAD)
    for done in (tones, models, user, as_json, download):
        assert done.returncode == 0, done.err
    # rich's markup is not interpreted: the brackets are printed as they came
    assert "[bold red]pwned[/]" in tones.out and "<script>alert(1)</script>" in tones.out
    assert "[bold red]pwned[/]" in models.out
    assert "[link=http://evil.example]me[/link]" in user.out
    assert json.loads(as_json.out)[0]["title"].startswith("[bold red]pwned[/] \x1b]0;pwned")  # JSON keeps it, escaped
    assert "\\u001b" in as_json.out
    assert os.listdir(str(case.work / "out")) == ["model-%d.nam" % MODEL_ID]  # the URL's name had escapes
    case.check_after()


def test_server_named_files_land_in_the_output_folder_or_are_refused(tmp_path):
    with HostileApi("dangerous-names") as api:
        case = Case(tmp_path, api)
        results = {model_id: case.run("download", str(model_id), "--tone", "1", "-o", "out/")
                   for model_id in sorted(DANGEROUS_NAMES)}
    saved = sorted(os.listdir(str(case.work / "out")))
    for model_id, done in results.items():
        if done.returncode == 0:
            assert "Saved %s/out/model-%d." % (case.work, model_id) in done.out, done.out
        else:  # no name a model format has: the bytes are not checked, so not taken
            assert done.returncode == 6 and "model-%d.bin" % model_id in done.err, done.err
    assert saved == ["model-11.nam", "model-12.nam", "model-7.nam", "model-9.nam"], saved
    case.check_after()


def test_a_model_url_on_another_origin_gets_no_token(tmp_path):
    with HostileApi("foreign-url") as api:
        case = Case(tmp_path, api)
        done = case.run(*DOWNLOAD)
        fetched = api.requests_to("/files/")
    assert done.returncode == 0, done.err
    assert [r.listener for r in fetched] == ["foreign"] and "authorization" not in fetched[0].headers
    assert api.authorized("api") == ["Bearer " + TOKEN]  # the listing, on the API's origin, had it
    case.check_after()


def test_an_http_model_url_under_an_https_api_gets_no_token(tmp_path):
    import trustme

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with HostileApi("http-url", tls=context, host="localhost") as api:
        case = Case(tmp_path, api, {"SSL_CERT_FILE": str(tmp_path / "ca.pem")})
        done = case.run(*DOWNLOAD)
        fetched = api.requests_to("/files/")
    assert done.returncode == 0, done.err
    assert [r.listener for r in fetched] == ["plain"]  # same host and port, plain http: no token
    assert api.authorized("plain") == [] and api.authorized("api") == ["Bearer " + TOKEN]
    case.check_after()
