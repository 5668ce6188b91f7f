"""Boot of the simulated pedal: the real firmware on the MicroPython unix port.

    micropython -X heapsize=<board heap> -m simboard.boot

What a board's boot does with its flash partition, this does with an image file: mount
it as littlefs at /flash (formatting a blank image, see simboard.flash), then hand over
to `pedal.main.start(settings)`. `tonebridge sim` (host/tonebridge/dev/simulator.py)
sets the environment and puts the console on a pty.

Environment:
    TONEBRIDGE_FLASH    the flash image: must exist, a whole number of 4096-byte blocks
    TONEBRIDGE_API      the TONE3000 API base URL
    TONEBRIDGE_PORTAL   HOST:PORT for the portal to listen on
    TONEBRIDGE_CA       optional: a DER CA certificate to trust for https
    TONEBRIDGE_BOARD    optional: the board name (default unix_sim)
    TONEBRIDGE_SYNC_ON_BOOT, TONEBRIDGE_SYNC_ON_SIGN_IN
                        optional: "0" to not start a sync then (tests)
    TONEBRIDGE_BOOT     optional: "board" runs the board's entry instead, pedal.main.boot()
                        (settings from /flash/config.json; tests give it a fake `network`)
    TONEBRIDGE_REQUESTS_PER_MINUTE
                        optional: the pacing limit (default 90; tests that sync
                        again and again raise it)
    TONEBRIDGE_PACE_WINDOW_MS
                        optional: that limit's window (default 60000; a test shortens it)
    TONEBRIDGE_STATS    optional: "1" to keep per-download numbers in /status.json
    TONEBRIDGE_SERIAL   optional: "0" to leave the console alone (no USB link service)
    TONEBRIDGE_LINK     optional: the link settings to announce: "pty" (default), or
                        "uart" behind the link emulator's model of a 260-byte UART ring
    TONEBRIDGE_CLIENT_ID
                        optional: the app's publishable key for today's OAuth sign-in
    TONEBRIDGE_DIALECT  optional: "current" (default) or "v1" (the seed's OTP sign-in)
    TONEBRIDGE_ADDRESS  optional: the pedal's own address on its "Wi-Fi" (default: the
                        portal's host); the LAN relay's redirect_uri is built from it
    TONEBRIDGE_NET      optional: the HTTP client's limits as a JSON object (pedal.net.LIMITS),
                        e.g. {"rate_window_ms": 1000, "min_rate_bytes": 64} (tests)
    TONEBRIDGE_FOOTSWITCH
                        optional: a file that is the footswitch: held while it exists
                        (`SimulatedPedal.press_footswitch`); without it the pedal has none
    TONEBRIDGE_GC_THRESHOLD
                        optional: gc.threshold() in bytes, so that mem_alloc() stays
                        close to the live data (the memory benchmark)
    TONEBRIDGE_CLEAN_RUN_S
                        optional: seconds up before a start counts as clean (default
                        60; the crash counter's tests shorten it)
    TONEBRIDGE_CRASH    optional (tests): <point>[:<exception>] makes the firmware raise
                        there at every start (simboard.faults)

A start that ends with an exception leaves `<flash image>.reset`: the next start is a
reset, not a power-on, for the crash counter (simboard.faults).

A setting that is missing or wrong ends the boot with one console line,
`sim: error: …`, and exit status 1.
"""

import gc
import os
import sys

from simboard import faults, flash

FS_ROOT = "/flash"
DEFAULT_BOARD = "unix_sim"


def fail(message):
    """Print `sim: error: <message>` on the console and end with status 1."""
    print("sim: error: " + message)
    sys.exit(1)


def required(name):
    """The value of environment variable `name`; fails if it is unset or empty."""
    value = os.getenv(name)
    if not value:
        fail(name + " is not set")
    return value


def flash_path():
    """$TONEBRIDGE_FLASH, checked: an existing file of whole blocks."""
    path = required("TONEBRIDGE_FLASH")
    try:
        size = os.stat(path)[6]
    except OSError:
        fail("TONEBRIDGE_FLASH: no such file: " + path)
    if size == 0 or size % flash.BLOCK_SIZE:
        fail("TONEBRIDGE_FLASH: %s is %d bytes, not a multiple of %d" % (path, size, flash.BLOCK_SIZE))
    return path


def portal_address():
    """$TONEBRIDGE_PORTAL as (host, port)."""
    value = required("TONEBRIDGE_PORTAL")
    host, _, port = value.rpartition(":")
    try:
        port = int(port)
    except ValueError:
        port = -1
    if not host or not 0 <= port <= 65535:
        fail("TONEBRIDGE_PORTAL must be HOST:PORT, not " + value)
    return host, port


def ca_der():
    """The bytes of $TONEBRIDGE_CA, or None when it is not set."""
    path = os.getenv("TONEBRIDGE_CA")
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        fail("TONEBRIDGE_CA: cannot read " + path)


def net_limits():
    """$TONEBRIDGE_NET as a dict (pedal.net.LIMITS), or None when it is not set."""
    text = os.getenv("TONEBRIDGE_NET")
    if not text:
        return None
    import json

    try:
        limits = json.loads(text)
    except ValueError:
        limits = None
    if not isinstance(limits, dict):
        fail("TONEBRIDGE_NET must be a JSON object, not " + text)
    return limits


def settings_from_env():
    """The settings dict `pedal.main.start` takes, from the environment."""
    host, port = portal_address()
    return {
        "api": required("TONEBRIDGE_API"),
        "portal_host": host,
        "portal_port": port,
        "fs_root": FS_ROOT,
        "ca_der": ca_der(),
        "board": os.getenv("TONEBRIDGE_BOARD") or DEFAULT_BOARD,
        "sync_on_boot": os.getenv("TONEBRIDGE_SYNC_ON_BOOT") != "0",
        "sync_on_sign_in": os.getenv("TONEBRIDGE_SYNC_ON_SIGN_IN") != "0",
        "stats": os.getenv("TONEBRIDGE_STATS") == "1",
        "gc_threshold": int(os.getenv("TONEBRIDGE_GC_THRESHOLD") or 0),
        "clean_run_s": float(os.getenv("TONEBRIDGE_CLEAN_RUN_S") or 0),
        "requests_per_minute": int(os.getenv("TONEBRIDGE_REQUESTS_PER_MINUTE") or 0),
        "pace_window_ms": int(os.getenv("TONEBRIDGE_PACE_WINDOW_MS") or 0),
        "serial": os.getenv("TONEBRIDGE_SERIAL") != "0",
        "serial_kind": "pty",
        "serial_link": os.getenv("TONEBRIDGE_LINK") or "pty",
        "client_id": os.getenv("TONEBRIDGE_CLIENT_ID") or None,
        "dialect": os.getenv("TONEBRIDGE_DIALECT") or None,
        "address": os.getenv("TONEBRIDGE_ADDRESS") or host,
        "sync_downloaded": os.getenv("TONEBRIDGE_SYNC_DOWNLOADED") == "1",
        "net": net_limits(),
        "footswitch": FileFootswitch(os.getenv("TONEBRIDGE_FOOTSWITCH")) if os.getenv("TONEBRIDGE_FOOTSWITCH") else None,
        "on_interrupt": interactive,
        "give_back": type_into_stdin,
        "on_serial_start": nonblocking,
    }


class FileFootswitch:
    """The simulated footswitch: pressed while its file exists (a test holds it)."""

    def __init__(self, path):
        self.path = path

    def pressed(self):
        try:
            os.stat(self.path)
            return True
        except OSError:
            return False


RESTART = 3  # the exit status of a pedal that restarts itself (the Wi-Fi set-up page)


def restart():
    """main.reset() in the simulator: end with status RESTART; whoever runs the pedal
    starts it again (tests do)."""
    print("sim: restart")
    sys.exit(RESTART)


def interactive():
    """Ctrl-C on the console: like a board, leave the user at the REPL.  The unix port
    reads MICROPYINSPECT when the module has ended, so setting it now gives one; its
    REPL needs a blocking stdin again."""
    stdin_blocking(True)
    os.putenv("MICROPYINSPECT", "1")


def type_into_stdin(data):
    """The serial service handed the console to the REPL: the REPL must read `data`
    (mpremote's Ctrl-A, which the service had read) before anything else.  A board types
    it through os.dupterm, which the unix port lacks; here it goes into our own stdin
    pipe, reopened for writing (Linux lets /proc/self/fd/0 of a pipe be opened so)."""
    with open("/proc/self/fd/0", "wb") as pipe:
        pipe.write(data)


def nonblocking():
    """The serial service starts: it reads whatever has arrived (see stdin_blocking)."""
    stdin_blocking(False)


def stdin_blocking(blocking):
    """Set or clear O_NONBLOCK on stdin (a pipe from `tonebridge sim`).

    The serial service must read whatever has arrived, but the unix port's
    `readinto` on a blocking pipe waits until the whole buffer is full, and the port
    has no fcntl.  The flag belongs to the pipe's open file description, which a child
    process shares: the host's Python sets it for us ($TONEBRIDGE_HOST_PYTHON)."""
    python = os.getenv("TONEBRIDGE_HOST_PYTHON") or "python3"
    status = os.system("%s -c 'import os; os.set_blocking(0, %s)'" % (python, "True" if blocking else "False"))
    if status != 0:
        fail("cannot make stdin %sblocking with %s" % ("" if blocking else "non-", python))


def boot():
    """Mount the flash image at /flash and start the firmware."""
    settings = settings_from_env()
    try:
        bdev = flash.FileBlockDev(flash_path())
        flash.mount(bdev, FS_ROOT)
    except OSError as error:
        fail("cannot mount the flash image: %s" % error)
    from pedal import main  # after the mount: the firmware may read flash as it loads

    image = flash_path()
    settings["reset_cause"] = cause = faults.reset_cause(image)
    main._reset_cause = lambda: cause  # the board entry asks machine.reset_cause(); the unix port has none
    main.reset = restart  # the unix port has no machine.reset()
    if os.getenv("TONEBRIDGE_CRASH"):
        problem = faults.inject(os.getenv("TONEBRIDGE_CRASH"))
        if problem:
            fail(problem)
    gc.collect()  # hand the firmware a heap with only what it needs
    try:
        if os.getenv("TONEBRIDGE_BOOT") == "board":
            main.boot()  # what main.py runs on a board: config.json on the flash, Wi-Fi, CA files
        else:
            main.start(settings)
    except KeyboardInterrupt:  # Ctrl-C: the REPL, not a reset
        raise
    except BaseException:
        faults.note_reset(image)  # a board resets after a crash (machine.reset())
        raise


if __name__ == "__main__":
    boot()
