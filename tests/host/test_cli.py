"""CLI error paths that need no service: one line on stderr, the right exit code."""

import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from signin_helpers import RawServer, raw_response

from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_API, EXIT_NETWORK, EXIT_SIGN_IN, EXIT_USAGE, normalize_api
from tonebridge.api.token_store import TokenStore
from tonebridge.api.transport import monotonic_ms
from tonecore.errors import UsageError
from tonecore.session import Tokens


def invoke(tmp_path, *args, env=None):
    full_env = {"TONEBRIDGE_HOME": str(tmp_path), "TONEBRIDGE_API": None}
    full_env.update(env or {})
    return CliRunner().invoke(cli, list(args), env=full_env)


def save_session(home, api):
    """A session for `api` with an access token that has an hour left."""
    TokenStore(str(home)).save(api, Tokens("A", "R", 3600, monotonic_ms() + 3600000), monotonic_ms(), time.time())


def assert_one_error_line(result, code, *fragments):
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stderr.startswith("tonebridge: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "given, expected",
    [
        ("http://127.0.0.1:54321", "http://127.0.0.1:54321/api/v1"),
        ("http://127.0.0.1:54321/", "http://127.0.0.1:54321/api/v1"),
        ("https://WWW.tone3000.com/api/v1/", "https://www.tone3000.com/api/v1"),
        ("https://proxy.example/t3k/api/v1", "https://proxy.example/t3k/api/v1"),
    ],
)
def test_api_urls_are_normalised(given, expected):
    assert normalize_api(given) == expected


@pytest.mark.parametrize("bad", ["notaurl", "ftp://host/x", "http://", "http://h:99999", "http://h/api?x=1"])
def test_bad_api_urls_are_usage_errors(bad):
    with pytest.raises(UsageError):
        normalize_api(bad)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["download"], ["Missing argument 'MODEL_ID'", "tonebridge download --help"]),
        (["download", "abc"], ["MODEL_ID"]),
        (["models"], ["Missing argument 'TONE_ID'"]),
        (["tones", "--bogus"], ["--bogus", "tonebridge tones --help"]),
        (["frobnicate"], ["No such command 'frobnicate'"]),
        (["--api", "notaurl", "whoami"], ["--api: not an absolute URL"]),
        (["whoami", "--api", "ftp://x"], ["unsupported URL scheme"]),
        (["login", "--timeout", "0"], ["--timeout"]),
    ],
)
def test_bad_arguments_are_one_line_exit_2(tmp_path, args, fragments):
    assert_one_error_line(invoke(tmp_path, *args), EXIT_USAGE, *fragments)


@pytest.mark.parametrize("command", [["whoami"], ["tones"], ["models", "1"], ["download", "1"]])
def test_not_signed_in(tmp_path, command):
    result = invoke(tmp_path, "--api", "http://127.0.0.1:1", *command)
    assert_one_error_line(result, EXIT_SIGN_IN, "not signed in to http://127.0.0.1:1/api/v1",
                          "run `tonebridge login --api http://127.0.0.1:1/api/v1`")


def test_no_network_is_exit_4(tmp_path):
    save_session(tmp_path, "http://127.0.0.1:1/api/v1")
    for command in (["whoami"], ["tones", "--created"], ["models", "3"]):
        result = invoke(tmp_path, *command, env={"TONEBRIDGE_API": "http://127.0.0.1:1"})
        assert_one_error_line(result, EXIT_NETWORK, "cannot reach http://127.0.0.1:1: connection refused")


def test_per_command_api_wins_over_the_group_and_the_environment(tmp_path):
    result = invoke(tmp_path, "--api", "http://127.0.0.1:2", "whoami", "--api", "http://127.0.0.1:3",
                    env={"TONEBRIDGE_API": "http://127.0.0.1:4"})
    assert "http://127.0.0.1:3/api/v1" in result.stderr
    result = invoke(tmp_path, "--api", "http://127.0.0.1:2", "whoami", env={"TONEBRIDGE_API": "http://127.0.0.1:4"})
    assert "http://127.0.0.1:2/api/v1" in result.stderr
    result = invoke(tmp_path, "whoami", env={"TONEBRIDGE_API": "http://127.0.0.1:4"})
    assert "http://127.0.0.1:4/api/v1" in result.stderr


def test_help_and_version(tmp_path):
    result = invoke(tmp_path, "--help")
    assert result.exit_code == 0
    for command in ("login", "logout", "whoami", "tones", "models", "download", "emulator"):
        assert command in result.output
    assert invoke(tmp_path, "--version").output.startswith("tonebridge, version ")


def test_the_installed_entry_point_reports_errors_without_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tonebridge", "--api", "http://127.0.0.1:1", "tones"],
        env={"TONEBRIDGE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_SIGN_IN
    assert done.stdout == ""
    assert done.stderr.startswith("tonebridge: error: not signed in") and done.stderr.count("\n") == 1


def test_rate_limited_after_retries_says_when_to_retry(tmp_path):
    def always_429(request):
        body = b'{"error": "rate_limited", "message": "Too many requests"}'
        return raw_response(429, [("Content-Type", "application/json"), ("Retry-After", "0.05"),
                                  ("Content-Length", len(body))], body)

    with RawServer(always_429) as server:
        save_session(tmp_path, server.base_url + "/api/v1")
        result = invoke(tmp_path, "--api", server.base_url, "whoami")
        attempts = len(server.requests)
    assert_one_error_line(result, EXIT_API, "rate limited by TONE3000 (HTTP 429): Too many requests",
                          "try again in a minute")
    assert attempts == 5  # the first try and the core's 4 retries, each after Retry-After


def test_server_text_cannot_drive_the_terminal_or_rich_markup():
    from tonebridge.cli.output import _cell, human_bytes, plain

    assert plain("evil\x1b]0;owned\x07name\x9b31m") == "evil ]0;owned name 31m"
    assert _cell("[bold red]x[/]") == "\\[bold red]x\\[/]"
    assert [human_bytes(n) for n in (None, 512, 1536, 4 << 20)] == ["-", "512 B", "1.5 KB", "4 MB"]
