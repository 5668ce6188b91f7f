"""The `tonebridge` command line.

    tonebridge [--api URL] COMMAND …
      login [--no-browser] [--paste] [--timeout S] [--qr/--no-qr]
      whoami [--check] [--json]
      logout
      tones [--favorited|--created] [--json]
      models TONE_ID [--json]
      download MODEL_ID [--tone TONE_ID] [-o PATH] [--force] [--json]
      emulator …            (the local TONE3000 stand-in, see tonebridge.dev.emulator)
      firmware boards|build|deploy|refresh-cas …   (the pedal firmware, see tonebridge.cli.firmware)
      sim [--board B] [--heap SIZE] [--flash PATH] [--ca DER] [--log FILE] [--portal-port N]
                            (the simulated pedal, see tonebridge.dev.simulator)
      pedal info|ls|push FILE|rm MODEL|activate MODEL|sync [--port PORT] [--json]
                            (a pedal on USB serial, see tonebridge.cli.pedal)

`--api` is accepted before or after the command; else $TONEBRIDGE_API; else the real
service.  A bare origin (`http://127.0.0.1:54321`, as the emulator prints) means
`<origin>/api/v1`.

Every failure is one line on stderr, `tonebridge: error: …`, never a traceback, and an
exit code from the one table in tonebridge.cli.common (README.md lists it): 0 ok ·
1 local problem · 2 usage · 3 not signed in · 4 network · 5 the API refused or failed ·
6 integrity · 7 the pedal (link failed, refused, no such model) · 130 interrupted.
Tokens and api keys are never printed.

Start-up.  This package imports nothing: `main` imports the root group
(tonebridge.cli.root), which knows the commands from a table and imports a command's
module only when that command runs; the commands import httpx, rich, pyserial and the
rest inside their functions.  So `tonebridge --help` and `tonebridge whoami` cost about
what `mpremote --help` does (`make bench`, "cli_startup").

Ctrl-C.  At any moment once `main` runs (its own imports included), Ctrl-C ends the
run with exit code 130 and one line, `tonebridge: error: interrupted`, never a
traceback; this package imports only `os` and `sys` (loaded with Python itself) so
that `main` runs at once.  Before that, Python itself is starting (about 20 ms, most of
it `site`): a Ctrl-C there ends the process by Python's own rules, before any of our
code could catch it.
"""

import os
import sys

EXIT_INTERRUPTED = 130  # as tonebridge.cli.common's (not imported: this module must stay light)
INTERRUPTED = "tonebridge: error: interrupted\n"


def main(argv=None):
    """Console entry point (`tonebridge`, `python -m tonebridge`).

    Returns:
        the exit code (the caller exits with it).
    """
    try:
        try:
            from tonebridge.cli.root import cli

            code = cli.main(argv, prog_name="tonebridge", standalone_mode=False)
        except KeyboardInterrupt:  # in an import, or between the command and its error line
            code = _interrupted()
        _flush_then_quiet()
    except KeyboardInterrupt:  # the moment between the two
        code = _interrupted()
    return code


def _interrupted():
    """Say so once; a second Ctrl-C from here on just ends the process."""
    import signal  # (here, not at the top: importing it takes a few ms, inside main's guard)

    signal.signal(signal.SIGINT, _exit_interrupted)
    try:
        sys.stderr.write(INTERRUPTED)
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed
        pass
    return EXIT_INTERRUPTED


def _flush_then_quiet():
    """The command is over: put out what it printed, then let a Ctrl-C while Python shuts
    down (threads, atexit) end the process at once instead of printing a traceback."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the command's own error handling said so
            pass
    import signal

    signal.signal(signal.SIGINT, _exit_interrupted)


def _exit_interrupted(signum, frame):
    os._exit(EXIT_INTERRUPTED)


def __getattr__(name):
    """`tonebridge.cli.cli`, the root group (tests and tools import it from here), loaded
    when asked for."""
    if name == "cli":
        from tonebridge.cli.root import cli

        return cli
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
