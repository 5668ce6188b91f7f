"""Start-up: what `tonebridge --help` and `whoami` load, and Ctrl-C at any moment.

The timing itself is a benchmark (`make bench`, "cli_startup"); these tests keep what
makes it fast: the root group imports no command, whoami reads the session file only.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from click import Command
from click.testing import CliRunner

from tonebridge.api.token_store import TokenStore
from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_INTERRUPTED, EXIT_NETWORK, EXIT_OK, EXIT_SIGN_IN
from tonebridge.cli.root import COMMANDS
from tonecore.session import Tokens

HEAVY = ("httpx", "rich", "serial", "cbor2", "tonebridge.api.transport", "tonebridge.cli.pedal")
NOBODY = "http://127.0.0.1:1/api/v1"  # nothing listens there
USER = {"id": "u-7", "username": "demo_player", "url": "https://example.invalid/demo_player", "avatar_url": None,
        "bio": None, "links": [], "created_at": None, "updated_at": None}

# Runs the console entry point in a fresh interpreter, then names the heavy modules it loaded.
PROBE = """
import sys
from tonebridge.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
print("LOADED=" + ",".join(m for m in %r if m in sys.modules))
sys.exit(code)
""" % (HEAVY,)


def save_session(home, api, user=None):
    now_ms = int(time.monotonic() * 1000)
    store = TokenStore(str(home))
    store.user = user
    store.save(api, Tokens("A", "R", 3600, now_ms + 3600000), now_ms, time.time())


def probe(home, *args):
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, TONEBRIDGE_HOME=str(home), TONEBRIDGE_API=NOBODY))
    loaded = done.stdout.rsplit("LOADED=", 1)[1].strip()
    return done, [name for name in loaded.split(",") if name]


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["whoami"], ["whoami", "--json"], ["logout"]])
def test_help_and_whoami_load_no_network_or_terminal_library(tmp_path, args):
    save_session(tmp_path, NOBODY, USER)
    done, loaded = probe(tmp_path, *args)
    assert done.returncode == EXIT_OK, done.stderr
    assert loaded == [], "%s loaded %s" % (" ".join(args), loaded)


def test_whoami_answers_from_the_session_saved_at_sign_in_without_the_network(tmp_path):
    save_session(tmp_path, NOBODY, USER)
    env = {"TONEBRIDGE_HOME": str(tmp_path), "TONEBRIDGE_API": NOBODY}
    result = CliRunner().invoke(cli, ["whoami"], env=env)
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines() == ["demo_player", "  id       u-7", "  profile  https://example.invalid/demo_player",
                                          "  api      " + NOBODY]
    assert json.loads(CliRunner().invoke(cli, ["whoami", "--json"], env=env).stdout) == USER
    # --check asks the service (here nobody answers), as does a session saved without the user
    checked = CliRunner().invoke(cli, ["whoami", "--check"], env=env)
    assert checked.exit_code == EXIT_NETWORK and "cannot reach http://127.0.0.1:1" in checked.stderr
    save_session(tmp_path, NOBODY)
    assert CliRunner().invoke(cli, ["whoami"], env=env).exit_code == EXIT_NETWORK


def test_whoami_names_the_service_the_session_is_for(tmp_path):
    emulator = "http://127.0.0.1:54321/api/v1"
    save_session(tmp_path, emulator, USER)
    result = CliRunner().invoke(cli, ["whoami"], env={"TONEBRIDGE_HOME": str(tmp_path), "TONEBRIDGE_API": None})
    assert result.exit_code == EXIT_SIGN_IN
    assert "the saved session is for %s: add `--api %s`" % (emulator, emulator) in result.stderr
    assert "www.tone3000.com/api/v1`" not in result.stderr  # no advice to sign in with a URL spelled out
    empty = CliRunner().invoke(cli, ["whoami"], env={"TONEBRIDGE_HOME": str(tmp_path / "none"),
                                                      "TONEBRIDGE_API": emulator})
    assert empty.stderr == ("tonebridge: error: not signed in to %s; run `tonebridge login --api %s`\n"
                            % (emulator, emulator))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_help_line_of_the_table_is_the_commands_own(name):
    command = cli.get_command(None, name)
    if name == "emulator" and "not available" in (command.help or ""):
        pytest.skip("the emulator is not installed here")
    for limit in (45, 200):  # --help cuts the line to the terminal's width
        assert Command(name, help=COMMANDS[name][2]).get_short_help_str(limit) == command.get_short_help_str(limit)


def test_help_lists_every_command(tmp_path):
    result = CliRunner().invoke(cli, ["--help"], env={"TONEBRIDGE_HOME": str(tmp_path)})
    listed = result.output.split("Commands:", 1)[1].split()
    assert set(COMMANDS) <= set(listed)


class SilentServer:
    """A TCP server that accepts connections and never answers (a hung service)."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.api = "http://127.0.0.1:%d/api/v1" % self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


def interrupt_whoami(home, api, delay_s):
    """(exit code, stdout, stderr) of `tonebridge whoami --check` sent SIGINT `delay_s`
    seconds after it started."""
    proc = subprocess.Popen([sys.executable, "-m", "tonebridge", "whoami", "--check"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TONEBRIDGE_HOME=str(home), TONEBRIDGE_API=api))
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


# Moments after the process starts: 0 (it has not reached Python's signal handling yet:
# killed by the signal, no output), then within the imports (~0.05-0.15 s) and while
# waiting on the network.  Python's own start-up before any tonebridge code (`site`,
# ~20 ms, later on a loaded machine) is not ours: a Ctrl-C there ends Python with its
# "init_import_site" fatal error, and the moment is tried again.
@pytest.mark.parametrize("delay_s", [0, 0.05, 0.1, 0.2, 0.3, 0.6])
def test_ctrl_c_at_any_moment_exits_130_without_a_traceback(tmp_path, delay_s):
    with SilentServer() as server:
        save_session(tmp_path, server.api, USER)
        for _ in range(3):
            code, out, err = interrupt_whoami(tmp_path, server.api, delay_s)
            if "init_import_site" not in err:
                break
    assert "Traceback" not in err and "Fatal Python error" not in err, err
    if delay_s == 0 and code == -signal.SIGINT:
        assert err == ""  # the signal came before Python started: the shell says 130 too
        return
    # 130, or (rarely, a signal that arrived while Python itself was starting) ended by
    # SIGINT after our line: a shell reports both as 130
    assert code in (EXIT_INTERRUPTED, -signal.SIGINT), (code, err)
    assert err == "tonebridge: error: interrupted\n"
    assert out == ""
