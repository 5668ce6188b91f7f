"""`make demo`: the whole host flow against the local emulator, as a user would run it.

1. start `tonebridge emulator` (a real server on a free loopback port) speaking today's
   TONE3000 API, with its demo app's publishable key as TONEBRIDGE_CLIENT_ID;
2. `tonebridge login --no-browser` (OAuth 2.0 + PKCE, a loopback listener); the demo
   plays the browser: opens the printed sign-in URL, types demo@example.com, reads the
   6-digit code from the emulator's outbox (or lets you type it with --type-code),
   submits it and allows tonebridge on the consent page; then `tonebridge login
   --device` as on a machine without a browser: the demo plays the phone that enters
   the printed code;
3. `tonebridge whoami`, `tonebridge tones --favorited`, `tonebridge models`;
4. `tonebridge download` of a few models of different kinds, one of them cut off
   mid-transfer by the emulator and resumed;
5. the pedal: a simulated pedal (the real firmware on the MicroPython unix port, its
   flash a littlefs image) signs in through its own web page with TONE3000's LAN relay
   - the demo plays the phone again - and syncs the favorites over "Wi-Fi"; the image
   is then read on the host and every model on it verified;
6. USB: the same pedal behind an emulated 921600-baud UART (its 260-byte receive ring
   modelled): `tonebridge pedal info`, `pedal sync` (all up to date), a push whose
   cable is pulled half-way and that resumes, `pedal ls`, `pedal rm`;
7. the seed's flow once: a second emulator speaking the seed's API v1, `tonebridge
   login --otp` (an emailed code and an api_key) and `tonebridge tones`;
8. says where the files are.

Every step runs the real CLI in a subprocess; nothing is mocked.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time

import httpx

from tonebridge.dev import phone
from tonebridge.dev.emulator.oauth import DEMO_CLIENT_ID

EMAIL = "demo@example.com"
LAN_ADDRESS = "10.77.0.2"  # the simulated pedal's address on its "Wi-Fi"


def banner(text):
    print("\n\033[1m== %s\033[0m" % text, flush=True)


class Emulator:
    """`tonebridge emulator` in a subprocess; its stdout lines are collected."""

    def __init__(self, *flags):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tonebridge", "emulator", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self.base_url = self.proc.stdout.readline().strip()
            if not self.base_url.startswith("http"):
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""
                raise SystemExit("demo: the emulator did not start: %s" % (err.strip() or self.base_url))
        except BaseException:  # Ctrl-C while waiting, or no URL: leave no server behind
            self.stop()
            raise
        self.lines = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def configure(self, **changes):
        httpx.post(self.base_url + "/_emulator/config", json=changes, timeout=5).raise_for_status()

    def file_info(self, model_id):
        return httpx.get("%s/_emulator/models/%d" % (self.base_url, model_id), timeout=5).json()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def cli(env, *args, capture=False):
    """Run `tonebridge ARGS`; print its output unless captured; return the completed process."""
    cmd = [sys.executable, "-m", "tonebridge", *args]
    print("$ tonebridge " + " ".join(shlex.quote(arg) for arg in args), flush=True)
    done = subprocess.run(cmd, env=env, text=True, capture_output=capture)
    if done.returncode != 0:
        if capture:
            sys.stderr.write(done.stderr)
        raise SystemExit("demo: `tonebridge %s` failed (exit %d)" % (" ".join(args), done.returncode))
    return done


def code_reader(emulator, type_code):
    """The phone's way to get the emailed code: the emulator's outbox, or you typing it."""
    if type_code:
        def read_code():
            return input("  [phone] the emulator 'emailed' a code (see its outbox: %s/_emulator/outbox); type it: "
                         % emulator.base_url).strip()
        return read_code
    mailbox = phone.outbox_code(emulator.base_url, EMAIL)

    def read_code():
        code = mailbox()
        print("  [phone] the code from the mailbox is %s; typing it" % code, flush=True)
        return code

    return read_code


def login(env, emulator, type_code, *flags):
    """Run `tonebridge login --no-browser` and play the browser's part."""
    cmd = [sys.executable, "-m", "tonebridge", "login", "--no-browser", *flags]
    print("$ " + " ".join(["tonebridge", "login", "--no-browser", *flags]), flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    auth_prefix = emulator.base_url + ("/api/v1/auth?" if "--otp" in flags else "/api/v1/oauth/authorize?")
    start_url = None
    for line in proc.stdout:
        print("  " + line.rstrip(), flush=True)
        if auth_prefix in line:
            start_url = line[line.index(auth_prefix) :].split()[0]
            break
    if start_url is None:
        proc.wait()
        raise SystemExit("demo: `tonebridge login` printed no sign-in URL")
    print("  [browser] opening the sign-in page, typing %s%s" % (
        EMAIL, "" if "--otp" in flags else ", then allowing tonebridge"), flush=True)
    landed = phone.sign_in(start_url, EMAIL, code_reader(emulator, type_code))
    print("  [browser] shows: HTTP %d" % landed.status_code, flush=True)
    for line in proc.stdout:
        print("  " + line.rstrip(), flush=True)
    if proc.wait(30) != 0:
        raise SystemExit("demo: `tonebridge login` failed")


def login_device(env, emulator, type_code):
    """Run `tonebridge login --device` and play the phone that enters the code."""
    emulator.configure(device_interval=1)  # the demo's phone is quick: poll every second
    print("$ tonebridge login --device --no-qr", flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "tonebridge", "login", "--device", "--no-qr"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    where = code = None
    for line in proc.stdout:
        print("  " + line.rstrip(), flush=True)
        if "To sign in, open " in line:
            where = line.split("open ", 1)[1].split()[0]
        if "enter the code:" in line:
            code = line.rsplit(" ", 1)[1].strip()
            break
    if not where or not code:
        proc.wait()
        raise SystemExit("demo: `tonebridge login --device` printed no code")
    print("  [phone] opening %s, typing the code %s, signing in as %s, allowing tonebridge" % (where, code, EMAIL),
          flush=True)
    done = phone.activate(where, code, EMAIL, code_reader(emulator, type_code))
    print("  [phone] shows: %s" % ("Device connected" if "Device connected" in done.text else done.status_code),
          flush=True)
    for line in proc.stdout:
        print("  " + line.rstrip(), flush=True)
    if proc.wait(30) != 0:
        raise SystemExit("demo: `tonebridge login --device` failed")


def seed_part(out, type_code):
    """The seed's OTP flow once, against a service that speaks the seed's API v1."""
    emulator = Emulator("--dialect", "v1")
    try:
        print("emulator (v1): " + emulator.base_url)
        env = dict(os.environ, TONEBRIDGE_HOME=os.path.join(out, "home-v1"), TONEBRIDGE_API=emulator.base_url)
        env.pop("TONEBRIDGE_CLIENT_ID", None)
        login(env, emulator, type_code, "--otp")
        cli(env, "tones", "--created")
    finally:
        emulator.stop()


def pick_models(env, tones):
    """A few models of different kinds from the favorites: (tone, model) pairs."""
    wanted = {}
    for tone in tones:
        if len(wanted) >= 4:
            break
        kind = tone.get("platform")
        if kind in wanted:
            continue
        models = json.loads(cli(env, "models", str(tone["id"]), "--json", capture=True).stdout)
        if models:
            wanted[kind] = (tone, models[0])
    return list(wanted.values())


def pedal_part(emulator, out, type_code):
    """The simulated pedal signs in through its portal and syncs.

    Returns:
        (flash image path, console log path).
    """
    from tonebridge.boards.flashimage import ImageError, check_library
    from tonebridge.dev.simulator import SimulatedPedal

    flash = os.path.join(out, "pedal-flash.img")
    console = os.path.join(out, "pedal-console.log")
    # The pedal's "Wi-Fi" address: the LAN relay sends the phone back there (the demo's
    # phone reaches it on loopback, as a phone on the pedal's network would directly).
    pedal = SimulatedPedal(emulator.base_url + "/api/v1", flash, log=console, env={"TONEBRIDGE_ADDRESS": LAN_ADDRESS})
    with pedal:
        pedal.start()
        print("serial: %s" % pedal.serial_path)
        print("portal: %s" % pedal.portal_url)
        if pedal.code_bytes is not None:
            print("(heap: %d KB for data, like an ESP32; the unix port adds the firmware's %d KB of bytecode on "
                  "top, which a real board keeps frozen in flash)"
                  % (pedal.data_heap // 1024, -(-pedal.code_bytes // 1024)))
        else:  # TONEBRIDGE_MICROPYTHON with the firmware frozen in, as on a board
            print("(heap: %d KB, like an ESP32; this micropython has the firmware frozen in, as on a board)"
                  % (pedal.heap // 1024))
        print("  [you] holding the pedal's footswitch for 2 s, then pressing Pair on the phone: only a paired "
              "phone may use the pedal's page", flush=True)
        pedal.press_footswitch()
        owner = phone.pair(pedal.portal_url)
        page = phone.owner_client(pedal.portal_url, owner)
        print("  [phone] paired (a cookie only this phone holds)", flush=True)
        print("  [phone] opening %ssignin (the pedal's 'Sign in with TONE3000' button)" % pedal.portal_url, flush=True)
        location = page.get("signin").headers["location"]
        print("  [phone] the pedal sends the phone to TONE3000's sign-in (OAuth, PKCE) with its own address %s "
              "as the way back: %s..." % (LAN_ADDRESS, location[:60]), flush=True)
        print("  [phone] typing %s, allowing tonebridge; TONE3000's LAN relay brings the phone back" % EMAIL,
              flush=True)
        landed = phone.sign_in(location, EMAIL, code_reader(emulator, type_code),
                               hosts={LAN_ADDRESS: "127.0.0.1"}, cookies=owner)
        print("  [phone] back on the pedal's page (%s, HTTP %d); the pedal stored its tokens in flash"
              % (landed.url, landed.status_code), flush=True)
        banner("The pedal syncs your favorites over 'Wi-Fi'")
        shown = None
        while True:  # what the pedal's page shows, twice a second
            status = page.get("status.json").json()
            sync = status["sync"] or {"state": "starting", "current": None, "installed": 0}
            line = "  sync: %s, %d installed" % (sync["state"], sync["installed"])
            current = sync.get("current")
            if current and current["total"]:
                line += ", now %s: %d of %d KB" % (current["name"], current["bytes"] // 1024,
                                                  current["total"] // 1024)
            elif current:  # the size is known once the response arrives
                line += ", now %s: starting" % current["name"]
            if line != shown:
                print(line, flush=True)
                shown = line
            if sync["state"] in ("done", "error"):
                break
            time.sleep(0.5)
        if sync["state"] != "done":
            raise SystemExit("demo: the pedal's sync failed: %s" % sync["error"])
        skipped = ", %d too large for this board" % sync["too_large"] if sync.get("too_large") else ""
        print("  %d new, %d up to date, %d failed%s; signed in as %s"
              % (sync["installed"], sync["up_to_date"], sync["failed"], skipped, status["user"]))
        print("  %-34s %-12s %-9s %8s  %s" % ("model", "platform", "size", "KB", "active"))
        for model in status["models"][:12]:
            print(("  %-34s %-12s %-9s %8d  %s" % (model["name"][:34], model["platform"], model["size"] or "",
                                                    model["bytes"] // 1024, "yes" if model["active"] else "")).rstrip())
        if len(status["models"]) > 12:
            print("  ... and %d more" % (len(status["models"]) - 12))
        total = sum(m["bytes"] for m in status["models"])
        print("  %d models, %.1f MB on flash, %.1f MB free" % (len(status["models"]), total / 1e6,
                                                              status["free_bytes"] / 1e6))
        print("(stopping the pedal)", flush=True)
    # Stopped: the image is a plain littlefs file now; read it on the host.
    try:
        manifest, _ = check_library(flash)
    except ImageError as error:
        raise SystemExit("demo: %s" % error) from None
    print("Read on the host with littlefs-python: %d models verified on the flash image (SHA-256)"
          % len(manifest["models"]))
    return flash, console


def _line_bytes(path, chunk=1024):
    """About how many bytes a push of `path` puts on the line (chunks deflated where that pays)."""
    import zlib

    total = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            packer = zlib.compressobj(6, zlib.DEFLATED, -9)
            packed = len(packer.compress(block) + packer.flush())
            total += min(len(block), packed) + 13
    return total


def usb_part(env, out, models_dir, flash):
    """The pedal on an emulated USB-UART link: info, sync, a push cut and resumed, ls, rm."""
    from tonebridge.boards.flashimage import check_library
    from tonebridge.dev.linkemu import LinkEmulator
    from tonebridge.dev.simulator import SimulatedPedal

    console = os.path.join(out, "pedal-console.log")
    pedal = SimulatedPedal(env["TONEBRIDGE_API"].rstrip("/") + "/api/v1", flash, log=console,
                           env={"TONEBRIDGE_SYNC_ON_BOOT": "0", "TONEBRIDGE_LINK": "uart"})
    with pedal:
        pedal.start()
        with LinkEmulator(pedal.serial_path, baud=921600, rx_buffer=260, rx_pending=pedal.rx_pending) as emu:
            print("(a USB-UART bridge at 921600 baud between us and the pedal; the pedal keeps 260 bytes)")
            cli(env, "pedal", "info", "--port", emu.host_path)
            cli(env, "pedal", "sync", "--port", emu.host_path)
            files = sorted((os.path.getsize(os.path.join(models_dir, n)), n) for n in os.listdir(models_dir))
            size, name = files[-1]
            path = os.path.join(models_dir, name)
            half = _line_bytes(path) // 2  # models go deflated where that pays: half of what goes on the line
            emu.disconnect_after(half)
            print("(the cable will be pulled once %d bytes are on the line, about half-way)" % half, flush=True)
            print("$ tonebridge pedal push %s --name 'From my computer' --port %s" % (path, emu.host_path), flush=True)
            cut = subprocess.run([sys.executable, "-m", "tonebridge", "pedal", "push", path, "--name", "From my computer",
                                  "--port", emu.host_path], env=env, text=True, capture_output=True)
            print((cut.stderr or cut.stdout).strip() + "   (exit %d)" % cut.returncode)
            port = emu.reconnect()
            print("(plugged in again: %s)" % port)
            cli(env, "pedal", "push", path, "--name", "From my computer", "--activate", "--port", port)
            cli(env, "pedal", "ls", "--port", port)
            cli(env, "pedal", "rm", "From my computer", "--port", port)
        print("(stopping the pedal)", flush=True)
    manifest, _ = check_library(flash)
    print("Read on the host with littlefs-python: %d models verified on the flash image (SHA-256)"
          % len(manifest["models"]))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tonebridge.dev.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo-out", help="where the demo keeps its config and models")
    parser.add_argument("--type-code", action="store_true", help="type the emailed code yourself")
    args = parser.parse_args(argv)

    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    models_dir = os.path.join(out, "models")
    os.makedirs(models_dir)
    banner("Starting the local TONE3000 emulator")
    emulator = Emulator()
    print("emulator: " + emulator.base_url)
    print("(its demo app's publishable key: %s)" % DEMO_CLIENT_ID)
    env = dict(os.environ, TONEBRIDGE_HOME=os.path.join(out, "home"), TONEBRIDGE_API=emulator.base_url,
               TONEBRIDGE_CACHE=os.path.join(out, "cache"), TONEBRIDGE_CLIENT_ID=DEMO_CLIENT_ID)
    try:
        banner("Signing in to TONE3000 (OAuth 2.0 + PKCE; the code comes by email)")
        login(env, emulator, args.type_code)
        cli(env, "whoami")
        banner("Signing in on a machine without a browser (the device grant)")
        login_device(env, emulator, args.type_code)
        cli(env, "whoami")

        banner("Your favorited tones")
        cli(env, "tones", "--favorited")
        tones = json.loads(cli(env, "tones", "--favorited", "--json", capture=True).stdout)

        banner("Downloading a few models")
        picks = pick_models(env, tones)
        if not picks:
            raise SystemExit("demo: the favorites have no models")
        # Make the emulator cut the first download half-way: the CLI resumes it.
        first = emulator.file_info(picks[0][1]["id"])
        emulator.configure(cut_queue=[first["size"] // 2])
        print("(the emulator will cut the first download at byte %d; watch it resume)" % (first["size"] // 2))
        started = time.monotonic()
        for tone, model in picks:
            cli(env, "download", str(model["id"]), "-o", models_dir)
        elapsed = time.monotonic() - started

        banner("On the computer")
        total = 0
        for name in sorted(os.listdir(models_dir)):
            size = os.path.getsize(os.path.join(models_dir, name))
            total += size
            print("  %-48s %9d bytes" % (name, size))
        print("%d models, %d bytes in %.1f s, in %s" % (len(picks), total, elapsed, models_dir))
        print("tokens: %s (mode 0600)" % os.path.join(out, "home"))

        banner("The pedal (simulated): it signs in through its own page")
        flash, console = pedal_part(emulator, out, args.type_code)
        banner("The pedal on USB: push, resume after an unplug, manage")
        usb_part(env, out, models_dir, flash)
        banner("The seed's sign-in, against a TONE3000 API v1 service")
        seed_part(out, args.type_code)
        banner("Done")
        print("models on the computer:  %s" % models_dir)
        print("tokens:                  %s" % os.path.join(out, "home"))
        print("pedal's flash image:     %s (littlefs; tonebridge.boards.flashimage reads it)" % flash)
        print("pedal's console log:     %s" % console)
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
