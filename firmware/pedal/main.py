"""The pedal application: flash library, TONE3000 session, portal and sync.

    boot()            on a board: read /config.json, join Wi-Fi, set the clock, start()
    start(settings)   run the pedal until the process ends (the simulator calls this)

settings: {"api": API base URL, "portal_host", "portal_port", "fs_root",
           "ca_ders": [DER bytes], "sync_on_boot": bool, "client_id": the app's
           publishable key (today's sign-in), "dialect": "current" (default) or "v1",
           "net": the HTTP client's limits (pedal.net.LIMITS; config.json "net"),
           "address": the pedal's own address on its network, "reset_cause": "power"
           after a power-on (the crash counter forgives earlier starts), "clean_run_s":
           seconds up before a start counts as clean (default 60)}

A start that keeps crashing does not loop: bootguard counts unclean starts, and after
three in a row the pedal starts in safe mode (portal and USB serial only, no sync at
boot, no tidying of the flash; `status()["safe_mode"]` says why).  A crash in safe mode
leaves the board at the REPL instead of resetting again.
"""

import asyncio
import gc
import time

import boardinfo
from tonecore.compat import hexlify
from tonecore.client import Client
from tonecore.dialect import dialect_named
from tonecore.errors import SignInRequired, ToneError, UsageError
from tonecore.ratelimit import RateLimiter
from tonecore.session import Session

from .bootguard import CLEAN_RUN_MS, SAFE_AFTER, BootGuard, unclean_starts
from .console import log
from .library import BYTES, HEAP_PER_MODEL, ID, NAME, PLATFORM, SHA, SIZE, Library, read_json
from .net import AsyncioDriver, Http
from .tokens import TokenFile

API_DEFAULT = "https://www.tone3000.com/api/v1"
REQUESTS_PER_MINUTE = 90  # the service allows 100
RUNNING = ("starting", "listing", "downloading")
NONCE_MS = 15 * 60 * 1000  # a sign-in started on the page must come back within this
AP_ADDRESS = "192.168.4.1"  # the ESP32's access point (its set-up network)
HOLD_MS = 2000  # hold the footswitch this long to pair a phone


class Clock:
    """Milliseconds since boot that never wrap (ticks_ms wraps; the core must not see it)."""

    def __init__(self):
        self.last = time.ticks_ms()
        self.total = 0

    def __call__(self):
        now = time.ticks_ms()
        self.total += time.ticks_diff(now, self.last)
        self.last = now
        return self.total


class Pedal:
    def __init__(self, settings, guard=None):
        self.settings = settings
        self.board = boardinfo
        root = settings.get("fs_root", boardinfo.FS_ROOT)
        self.guard = guard = guard or BootGuard(root)
        self.safe_mode = guard.safe_mode  # why this start is in safe mode, or None
        guard.stage = "library"
        self.library = self._open_library(root)
        guard.stage = "session"
        self.clock = Clock()
        self.token_file = TokenFile(root)
        self.api = settings.get("api") or API_DEFAULT
        cas = settings.get("ca_ders") or ([settings["ca_der"]] if settings.get("ca_der") else ())
        self.http = Http(cas, limits=settings.get("net"))  # its buffer: now, while the heap is whole
        pace = settings.get("requests_per_minute") or REQUESTS_PER_MINUTE
        window = settings.get("pace_window_ms") or 60000
        self.session = Session(None, self.token_file.load(self.clock()))
        self.client = Client(self.api, self.session, self.clock, RateLimiter(pace, window),
                             dialect_named(settings.get("dialect")))
        from .signin import SignIns

        self.signins = SignIns(self)
        self.session.flow = self.signins.refresh_flow(self.token_file.flow, self.token_file.client_id)
        self.driver = AsyncioDriver(self.http, self._persist)
        self.user = None
        self.sign_in_again = False
        self.sync = None
        self.serial = None
        self.app = None
        self.code_bytes = 0
        self.user_signed_out = False
        self.serial_transfer = None  # the model a USB push is writing, if any
        log("pedal: %s, %d models installed, %s" % (
            boardinfo.NAME, len(self.library.models), "signed in" if self.session.signed_in else "not signed in"))

    def _open_library(self, root):
        """The library, never an exception: out of memory it is empty and read-only for
        this start; in safe mode the flash is not tidied (recover() is what crashed the
        pedal in the field)."""
        max_models = getattr(boardinfo, "MAX_MODELS", None) or boardinfo.HEAP_BUDGET // HEAP_PER_MODEL
        library = Library(root, getattr(boardinfo, "MAX_MODEL_BYTES", None), max_models)
        for problem in (library.read_only, library.note):
            if problem:
                log("library: " + problem)
        if self.safe_mode:
            return library
        self.guard.stage = "recover"
        try:
            removed = library.recover()
            if removed:
                log("flash: removed %d leftover files" % removed)
        except MemoryError:
            gc.collect()
            log("flash: out of memory while tidying up; leftover files stay until the next start")
        except OSError as exc:
            log("flash: could not tidy up: %s" % (exc,))
        if library.note:
            log("library: " + library.note)
        return library

    def _persist(self, tokens):
        self.token_file.save(tokens, self.clock(), self.session.flow)
        if tokens is None:
            self.user = None

    # -- actions used by the portal --------------------------------------------------

    async def signed_in(self):
        """A sign-in finished (its tokens are on flash): the profile, then a sync."""
        self.sign_in_again = False
        self.user_signed_out = False
        log("sign-in: signed in")
        await self.load_user()
        if self.settings.get("sync_on_sign_in", True):
            self.start_sync()

    async def load_user(self):
        try:
            user = await self.driver.run_async(self.client.user())
            self.user = user.username
        except SignInRequired:
            self.signed_out()
        except ToneError as exc:
            log("sign-in: could not read the profile: %s" % exc)
        except MemoryError:
            gc.collect()
            log("sign-in: out of memory reading the profile")

    def signed_out(self):
        self.sign_in_again = True
        self.user = None
        log("session: TONE3000 needs a new sign-in")

    async def sign_out(self):
        await self.driver.run_async(self.client.sign_out())
        self.sign_in_again = False
        self.user_signed_out = True  # a sync stopped by this is not a lost session
        log("sign-in: signed out")

    def restart_soon(self, why, delay_ms=1500):
        """Restart the pedal in `delay_ms` (the page's answer goes out first); a restart
        asked for is not a crash for the crash counter."""
        log("pedal: restarting in %d s: %s" % (delay_ms // 1000, why))

        async def later():
            await asyncio.sleep_ms(delay_ms)
            self.guard.clear()
            reset()

        asyncio.create_task(later())

    def syncing(self):
        return self.sync is not None and self.sync.state in RUNNING

    def start_sync(self):
        """Start a sync unless one runs; True when a new one started."""
        if self.syncing() or self.serial_transfer is not None:
            return False
        if not self.session.signed_in:
            return False
        from .sync import Sync

        try:
            self.sync = Sync(self)
            asyncio.create_task(self._sync(self.sync))
        except MemoryError:
            self.sync = None
            gc.collect()
            log("sync: out of memory; not started")
            return False
        return True

    async def _sync(self, sync):
        log("sync: started")
        await sync.run()
        if sync.error == "sign in again" and not self.user_signed_out:
            self.signed_out()
        if sync.state == "done" and self.safe_mode:
            self.safe_mode = None
            self.guard.clear()
            log("safe mode: off (a sync finished); the next start is a normal one")

    def status(self, with_models=True):
        """The pedal's state as a dict.  `with_models` False leaves out the model list
        (the portal streams it with `model_items()` instead of building it)."""
        library = self.library
        try:
            free = library.free_bytes()
        except OSError:
            free = None
        data = {
            "board": boardinfo.NAME,
            "signed_in": self.session.signed_in,
            "user": self.user,
            "message": "sign in again" if self.sign_in_again and not self.session.signed_in else None,
            "sign_in": self.signins.status(),
            "active": library.active,
            "model_count": len(library.models),
            "max_models": library.max_models,
            "library_note": library.read_only or library.note,
            "safe_mode": self.safe_mode,
            "free_bytes": free,
            "used_bytes": library.used_bytes(),
            "sync": self.sync.status() if self.sync else None,
            "heap": {"alloc": gc.mem_alloc(), "free": gc.mem_free(), "code": self.code_bytes,
                     "sync_peak": self.sync.peak_alloc if self.sync else None},
        }
        if with_models:
            data["models"] = list(self.model_items())
        return data

    def model_items(self):
        """The installed models for the status, one dict at a time."""
        library = self.library
        for entry in library.models:
            yield {
                "id": entry[ID], "name": entry[NAME], "platform": entry[PLATFORM], "size": entry[SIZE],
                "bytes": entry[BYTES], "sha256": hexlify(entry[SHA]) if entry[SHA] else None,
                "active": entry[ID] == library.active,
            }

    # -- running -------------------------------------------------------------------------

    def start_serial(self):
        """Start the USB link service on the console; a board whose console kind has no
        link profile runs without it (the portal and sync do not need it)."""
        from .serial import SerialService

        try:
            self.serial = SerialService(self, self.settings.get("serial_kind"), self.settings.get("serial_link"))
        except UsageError as exc:
            log("usb: no USB link on this console: %s" % exc)
            return
        except MemoryError:
            self.serial = None
            gc.collect()
            log("usb: not enough memory for the USB link this start; the page and sync still run")
            return
        asyncio.create_task(self.serial.run())

    def allowed_host(self, name):
        """True when `name` (a Host or Origin host, lower case, no port) is this pedal:
        its own address, its .local name, its access point, or loopback.  Anything else
        is a name someone pointed at the pedal (DNS rebinding)."""
        return name in self.host_names

    async def serve(self):
        from .owner import Owners, watch
        from .portal import make_app
        from .webserver import MAX_CONNECTIONS, WebServer

        settings = self.settings
        if settings.get("serial", True):  # first: its buffers are the biggest blocks, found before the rest
            gc.collect()
            self.start_serial()
        host = settings.get("portal_host", "0.0.0.0")
        port = settings.get("portal_port", 80)
        names = ["localhost", "127.0.0.1", "[::1]", AP_ADDRESS, host, settings.get("address")]
        if settings.get("hostname"):
            names.append(settings["hostname"] + ".local")
        self.host_names = [name.lower() for name in names if name and name != "0.0.0.0"]
        self.owners = Owners(self.library.root, self.clock, settings.get("footswitch_hold_ms") or HOLD_MS)
        footswitch = settings.get("footswitch") or _board_footswitch()
        if footswitch is not None:
            asyncio.create_task(watch(footswitch, self.owners))
        self.app = app = make_app(self)
        self.web = web = WebServer(app, self.allowed_host, settings.get("portal_connections") or MAX_CONNECTIONS)
        web.listen(host, port)  # raises why it could not listen
        log("portal: listening on http://%s:%d/" % (host, port))
        if self.session.signed_in:
            await self.load_user()
            if self.settings.get("sync_on_boot", True):
                self.start_sync()
        await web.run()


def _board_footswitch():
    """The board's footswitch (boards/<board>/board.py PINS), or None without one."""
    number = getattr(boardinfo, "PINS", {}).get("footswitch")
    if number is None:
        return None
    try:
        from .owner import PinFootswitch

        return PinFootswitch(number)
    except (ImportError, ValueError, OSError):  # no machine.Pin (the unix port)
        return None


def reset():
    """Reset the board (the simulator replaces this: its pedal exits with RESTART)."""
    import machine

    machine.reset()


def load_modules():
    """Import every module the pedal loads on demand, now: on the unix port its bytecode
    then sits in the heap before the data does (and the simulator's code probe,
    simsetup.CODE_PROBE, counts the same modules)."""
    from tonecore import jsonscan, qr, wavscan  # noqa: F401  (format checks, the device sign-in's QR code)

    from . import messages, owner, page, portal, serial, signin, sync, webserver, wifi  # noqa: F401


def start(settings):
    """Run the pedal; counted by the crash counter (bootguard), in safe mode after
    SAFE_AFTER unclean starts.  An exception ends it (recorded for the next start)."""
    guard = BootGuard(settings.get("fs_root", boardinfo.FS_ROOT))
    reason = guard.begin(settings.get("reset_cause") == "power")
    if reason:
        settings["sync_on_boot"] = False
        log("safe mode: %s; sync is off until you press Sync or restart" % reason)
    try:
        guard.stage = "load"
        load_modules()
        gc.collect()
        code_bytes = gc.mem_alloc()  # bytecode on the unix port; frozen in flash on a board
        if settings.get("gc_threshold"):
            gc.threshold(settings["gc_threshold"])  # measuring: mem_alloc stays near live data
        pedal = Pedal(settings, guard)
        pedal.code_bytes = code_bytes
        guard.stage = "serve"
        asyncio.run(_run(pedal))
    except KeyboardInterrupt:  # the user at the console stopped it: not a crash
        guard.clear()
        raise
    except BaseException as exc:
        guard.crashed(exc)
        raise


async def _run(pedal):
    asyncio.create_task(_clean_run(pedal))
    await pedal.serve()


async def _clean_run(pedal):
    """Clear the crash counter once the pedal has been up `clean_run_s` (60 s) with no
    sync running (a sync at boot must have finished, or failed without a crash)."""
    wait_ms = int((pedal.settings.get("clean_run_s") or CLEAN_RUN_MS // 1000) * 1000)
    guard = pedal.guard
    while pedal.clock() < wait_ms or pedal.syncing():
        await asyncio.sleep_ms(min(1000, wait_ms))
    guard.stage = "running"
    if guard.clear() and guard.count:
        log("pedal: ran cleanly for %d s; the crash counter is cleared" % (wait_ms // 1000))


def boot():
    """The board entry (main.py): settings from /config.json, Wi-Fi, clock, start()."""
    root = boardinfo.FS_ROOT.rstrip("/")
    config = read_json(root + "/config.json", {}) or {}
    from . import wifi

    device = wifi.device_name()
    host = wifi.join(config.get("wifi") or {}, root, device)
    cas = []
    for name in boardinfo.CA_FILES:
        try:
            with open(root + "/ca/" + name, "rb") as f:
                cas.append(f.read())
        except OSError:
            log("tls: CA file %s/ca/%s is missing" % (root, name))
    settings = {
        "api": config.get("api") or API_DEFAULT, "portal_host": "0.0.0.0", "portal_port": config.get("port", 80),
        "fs_root": root, "ca_ders": cas, "sync_on_boot": config.get("sync_on_boot", True),
        "address": host, "hostname": device, "wifi_ssid": (config.get("wifi") or {}).get("ssid"), "client_id": config.get("client_id"), "dialect": config.get("dialect"),
        "sync_downloaded": config.get("sync_downloaded", False), "net": config.get("net"), "reset_cause": _reset_cause(),
    }
    try:
        start(settings)
    except KeyboardInterrupt:  # Ctrl-C on the console: leave to the REPL (mpremote, deploys)
        raise
    except Exception as exc:  # MemoryError too (an Exception on MicroPython, as on CPython)
        if unclean_starts(root) > SAFE_AFTER:  # it crashed in safe mode: resetting would loop
            log("pedal: stopped by %r in safe mode; not restarting (the REPL is on the USB console; "
                "power the pedal off and on to try again)" % (exc,))
            return
        # a pedal on a pedalboard restarts instead of sitting at a REPL; the crash counter
        # (bootguard) turns a loop of these into safe mode
        log("pedal: stopped by %r; restarting in 5 s" % (exc,))
        time.sleep(5)
        import machine

        machine.reset()


def _reset_cause():
    """"power" after a power-on, "reset" after any other reset, None where unknown."""
    try:
        import machine

        return "power" if machine.reset_cause() == machine.PWRON_RESET else "reset"
    except (ImportError, AttributeError):
        return None
