"""`tonebridge pedal …`: a pedal on USB serial.

    tonebridge pedal info      [--port PORT] [--json]   board, flash free for models, link limits
    tonebridge pedal ls        [--port PORT] [--json]   the models installed
    tonebridge pedal push FILE [--id N] [--name] [--platform] [--activate] [--json]
    tonebridge pedal rm MODEL / activate MODEL [--json] MODEL: an id or an exact name
    tonebridge pedal wifi SSID [--password-stdin | --password P] [--no-restart]
                                                        the network the pedal joins (its
                                                        config.json), then a restart into it
    tonebridge pedal sync      [--port PORT] [--json]   what the pedal's own Wi-Fi sync
                                                        would fetch (tonecore.syncpolicy:
                                                        favorited and created tones),
                                                        downloaded here, pushed where
                                                        missing or changed

`--port auto` (the default, or $TONEBRIDGE_PORT) finds the one ESP32 board on USB by
its USB ids.  Opening the port does not reset the board.  Pushes resume: run the same
push again after an unplug and it continues where the pedal's flash ends.  A pedal
left at the MicroPython REPL (by mpremote or a Ctrl-C) is started again through the
raw REPL first.
"""

import errno
import os
import shutil
import sys

import click
import platformdirs

from tonecore.download import Verifier
from tonecore.errors import LinkBroken, PedalRefused, ToneError, UsageError
from tonecore.formats import platform_of
from tonecore import link
from tonecore.link import E_NO_SPACE, E_NOT_FOUND
from tonecore.records import MAX_PAGE_SIZE, PLATFORMS
from tonecore.syncpolicy import SKIP, UP_TO_DATE, SyncPolicy

from tonebridge.cli import output
from tonebridge.cli.common import EXIT_PEDAL
from tonebridge.link.session import DEFAULT_BAUD, PedalLink

PORT_ENV = "TONEBRIDGE_PORT"
CACHE_ENV = "TONEBRIDGE_CACHE"
LOCAL_IDS = 1 << 30  # a file that is not from TONE3000 gets an id from here up


def port_options(command):
    command = click.option("--baud", type=click.IntRange(min=300), default=DEFAULT_BAUD, show_default=True,
                           help="Line rate for a UART bridge (native USB ignores it).")(command)
    command = click.option("--port", envvar=PORT_ENV, default="auto", show_default=True,
                           help="The serial port, or `auto` to find the pedal by USB id [env: %s]." % PORT_ENV)(command)
    return command


def json_option(command):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(command)


def connect(port, baud):
    """The pedal on `port`, its link open.  A pedal at the MicroPython REPL (after a
    Ctrl-C or mpremote) is started again first, with a note; a board without the
    firmware is an error (exit 7) that says to deploy it."""
    return PedalLink.open_port(port, baud, on_repl=lambda: output.note(
        "The pedal is at the MicroPython REPL: starting the tonebridge firmware there."))


@click.group(name="pedal")
def pedal_group():
    """A pedal on USB serial: look, push, sync, manage."""


@pedal_group.command()
@port_options
@json_option
def info(port, baud, as_json):
    """What the pedal says about itself: board, flash free for models, link limits.

    The free flash is what a model may take: the pedal keeps a reserve for its own
    writes (SPARE_BLOCKS in firmware/pedal/library.py) and refuses a push that does not
    fit with this same figure.
    """
    with connect(port, baud) as pedal:
        data = dict(pedal.info)
        models, active = pedal.models()
        data.update({"models": len(models), "active": active, "port": pedal.port.port})
    if as_json:
        output.emit_json(data)
        return
    click.echo("%s on %s (firmware %s, protocol %s)" % (data["board"], data["port"], data["firmware"], data["protocol"]))
    # free_bytes: what a model may take (the flash free less the pedal's reserve for its
    # own writes), the figure a push that does not fit is refused with
    click.echo("  %d models installed, active %s; %s free for models" % (
        data["models"], data["active"] or "-", output.human_bytes(data["free_bytes"])))
    click.echo("  frames up to %d bytes, window %d, receive buffer %s%s" % (
        data["max_frame"], data["window"], data["rx_buffer"] or "unlimited",
        ", deflate" if data["deflate"] else ""))


@pedal_group.command(name="ls")
@port_options
@json_option
def list_models(port, baud, as_json):
    """The models installed on the pedal."""
    with connect(port, baud) as pedal:
        models, active = pedal.models()
    if as_json:
        output.emit_json([model.to_json() for model in models])
        return
    if not models:
        click.echo("No models on the pedal.")
        return
    for model in models:
        click.echo("%s %10d  %-28s %-8s %9s  %s" % (
            "*" if model.active else " ", model.id, (model.name or "")[:28], model.platform or "-",
            output.human_bytes(model.bytes), (model.sha256 or "")[:12]))


@pedal_group.command()
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@port_options
@click.option("--id", "model_id", type=click.IntRange(min=1, max=link.MAX_ID), help="The TONE3000 model id [default: "
              "one derived from the file's SHA-256, for a file that is not from TONE3000].")
@click.option("--name", help="The name the pedal shows [default: the file name].")
@click.option("--platform", type=click.Choice(PLATFORMS), help="[default: from the file's extension; .json: "
              "aida-x].")
@click.option("--activate", is_flag=True, help="Make it the active model once installed.")
@click.option("--no-compress", is_flag=True, help="Never send deflated chunks.")
@json_option
def push(path, port, baud, model_id, name, platform, activate, no_compress, as_json):
    """Send FILE to the pedal: verified there, installed atomically, resumable."""
    if not os.path.isfile(path):
        raise UsageError("no such file: %s" % path)
    platform = platform or platform_of(path)  # (a .json is AIDA-X unless --platform says otherwise)
    sha = bytes.fromhex(_checked_sha256(path, platform))  # the pedal checks it again
    if model_id is None:
        model_id = LOCAL_IDS + int.from_bytes(sha[:3], "big")
    with connect(port, baud) as pedal:
        pedal.compress = not no_compress
        with output.DownloadProgress("push %s" % os.path.basename(path)) as progress:
            result = pedal.push(path, model_id, name=name or os.path.basename(path), platform=platform,
                                progress=progress.update, sha256=sha)
        if activate:
            pedal.activate(model_id)
    record = result.to_json()
    record["active"] = bool(activate)
    if as_json:
        output.emit_json(record)
        return
    notes = []
    if result.resumed_from:
        notes.append("resumed at byte %d" % result.resumed_from)
    if result.resent:
        notes.append("%d bytes sent again" % result.resent)
    rate = result.sent / result.elapsed_s if result.elapsed_s > 0 else 0
    click.echo("Installed model %d on the pedal: %d bytes in %.1f s (%s/s)%s" % (
        model_id, result.size, result.elapsed_s, output.human_bytes(rate), "; " + "; ".join(notes) if notes else ""))
    click.echo("  sha256 %s, verified on the pedal%s" % (result.sha256, "; now active" if activate else ""))


def _checked_sha256(path, platform):
    """The SHA-256 (hex) of the file at `path`, read once and checked as the pedal will
    check it (tonecore's Verifier: a known extension, a platform it holds, the structure
    of its kind), before anything is sent.

    Raises:
        FormatError: not a model file the pedal takes (exit 6).
        UsageError: it cannot be read, or its name is longer than the pedal keeps.
    """
    filename = os.path.basename(path)
    if len(filename) > link.MAX_FILENAME:
        raise UsageError("the file name %s is longer than %d characters; rename it" % (filename, link.MAX_FILENAME))
    verifier = Verifier(filename, platform)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                verifier.feed(chunk)
    except OSError as error:
        raise UsageError("cannot read %s: %s" % (path, error.strerror or error)) from None
    return verifier.finish()


def _model_id(pedal, model):
    """The id of MODEL: the id or the exact name of one installed model.

    Raises:
        PedalRefused: no model of that name (exit 7, as the pedal's own refusal of an
            unknown id: an unknown model is the same error however it is named).
        UsageError: several models have that name.
    """
    models, _ = pedal.models()
    if model.isdigit():
        return int(model)
    named = [m for m in models if m.name == model]
    if len(named) == 1:
        return named[0].id
    if not named:
        raise PedalRefused("no model named %r on the pedal (see `tonebridge pedal ls`)" % model, E_NOT_FOUND)
    raise UsageError("%d models are named %r; use the id" % (len(named), model))


def _manage_command(name, action, field, done, doc):
    """`pedal rm` and `pedal activate`: find MODEL's id (an id or an exact name), then
    `action(link, id)`; print `done % id`, or {"id", field: true} as JSON."""

    @pedal_group.command(name=name, help=doc)
    @click.argument("model")
    @port_options
    @json_option
    def command(model, port, baud, as_json):
        with connect(port, baud) as pedal:
            model_id = _model_id(pedal, model)
            action(pedal, model_id)
        if as_json:
            output.emit_json({"id": model_id, field: True})
        else:
            click.echo(done % model_id)

    return command


rm = _manage_command("rm", lambda pedal, model_id: pedal.delete(model_id), "deleted",
                     "Deleted model %d from the pedal.", "Delete MODEL (an id or a name) from the pedal.")
activate = _manage_command("activate", lambda pedal, model_id: pedal.activate(model_id), "active",
                           "Model %d is now active.", "Make MODEL (an id or a name) the pedal's active model.")


@pedal_group.command(name="wifi")
@click.argument("ssid")
@click.option("--password", metavar="P", help="The network's password ('' for an open network). Other users of "
              "this computer can see it in the process list: prefer --password-stdin or the prompt.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--restart/--no-restart", default=True, show_default=True,
              help="Restart the pedal so that it joins the network now (else at its next start).")
@port_options
@json_option
def wifi(ssid, password, password_stdin, restart, port, baud, as_json):
    """Give the pedal a Wi-Fi network to join, over USB (saved in its config.json).

    Without --password or --password-stdin it asks for the password without showing
    it; an empty one is an open network.  The password is never printed, nor logged
    by the pedal.
    """
    password = _wifi_password(ssid, password, password_stdin)
    problem = link.wifi_problem(ssid, password)
    if problem:
        raise UsageError(problem)
    with connect(port, baud) as pedal:
        try:
            reply = pedal.request(link.WIFI, {link.K_SSID: ssid, link.K_PASSWORD: password, link.K_RESTART: restart})
        except PedalRefused as error:
            if "unknown message type" in str(error):
                raise PedalRefused("the pedal's firmware predates `pedal wifi`: deploy it again (tonebridge firmware "
                                   "deploy) or use its Wi-Fi set-up page", error.code) from None
            raise
    saved = reply.get(link.K_SSID) or ssid.strip()
    hostname = reply.get(link.K_HOSTNAME) or "tonebridge"
    url = "http://%s.local/" % hostname
    if as_json:
        output.emit_json({"ssid": saved, "restart": bool(reply.get(link.K_RESTART)), "hostname": hostname, "url": url})
        return
    click.echo("Saved the Wi-Fi network %r on the pedal; %s: then open %s (or the address its console prints)"
               % (saved, "it is restarting to join it" if restart else "it joins it at its next start", url))


def _wifi_password(ssid, password, from_stdin):
    """The password from --password, the first line of stdin, or a hidden prompt."""
    if from_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin exclude each other")
        return sys.stdin.readline().rstrip("\r\n")
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise UsageError("no Wi-Fi password given: pipe it in with --password-stdin (or give --password '' for an "
                         "open network)")
    return click.prompt("Password for %s (empty for an open network)" % ssid, default="", hide_input=True,
                        show_default=False)


def cache_dir():
    """Where `pedal sync` keeps the models it downloads ($TONEBRIDGE_CACHE, else the
    user's cache directory)."""
    return os.path.join(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("tonebridge"), "models")


@pedal_group.command()
@port_options
@click.option("--api", "api", metavar="URL", help="The TONE3000 API URL (as for the other commands).")
@click.option("--downloaded", is_flag=True, help="Also the tones you downloaded on TONE3000 (today's service).")
@json_option
@click.pass_context
def sync(ctx, port, baud, api, downloaded, as_json):
    """Download here what the pedal's own sync would fetch, and push what it lacks."""
    from tonebridge.cli.common import open_connection

    if api:
        ctx.find_root().meta["tonebridge.api"] = api  # as cli.api_option does
    with connect(port, baud) as pedal:
        with open_connection(ctx) as conn:
            report = PedalSync(conn, pedal, downloaded).run()
    if as_json:
        output.emit_json(report)
    else:
        click.echo("Pushed %d, up to date %d, skipped %d, failed %d." % (
            len(report["pushed"]), len(report["up_to_date"]), len(report["skipped"]), len(report["failed"])))
        for item in report["failed"]:
            click.echo("  model %d: %s" % (item["id"], item["error"]))
    if report["stopped"]:
        raise HostDiskFull(report["stopped"])  # exit 1: a local problem
    if report["failed"]:
        ctx.exit(EXIT_PEDAL)


class HostDiskFull(ToneError):
    """This computer's disk is full: `pedal sync` stops (the pedal keeps what it got)."""


class PedalSync:
    """One `pedal sync`: tonecore.syncpolicy over a pedal on USB, downloads in the cache.

    A full disk is told apart from a full pedal: this computer's disk full stops the
    sync ("stopped" in the report: which folder, how much is free, what was kept);
    the pedal's flash full fails that model (its message has what the pedal has
    free for models) and the sync goes on, smaller models may still fit.

    Args:
        conn: a transport.Connection (signed in).
        pedal: an open PedalLink.
    """

    def __init__(self, conn, pedal, downloaded=False):
        from tonebridge.boards.facts import load_board

        self.conn = conn
        self.pedal = pedal
        self.board = pedal.info["board"]
        try:
            facts = load_board(self.board)
            self.policy = SyncPolicy(facts.formats, facts.max_model_bytes, facts.nam_architectures, downloaded)
        except ToneError:
            self.policy = SyncPolicy(None, downloaded=downloaded)  # a board this host does not know: nothing filtered
        self.report = {"pushed": [], "up_to_date": [], "skipped": [], "failed": [], "stopped": None}

    def run(self):
        """Returns the report: ids pushed, up to date, skipped (with why) and failed, and
        why it stopped early (None: it did not)."""
        try:
            self._run()
        except HostDiskFull as error:
            self.report["stopped"] = str(error)
        return self.report

    def _run(self):
        conn, policy, report = self.conn, self.policy, self.report
        installed = {m.id: m.updated_at or "" for m in self.pedal.models()[0]}  # as SyncPolicy.decide wants
        for tone_id, platform in conn.run(policy.tones(conn.client, MAX_PAGE_SIZE)):
            models = [model for architecture in policy.listings(platform, conn.client.dialect)
                      for model in conn.run(conn.client.all_models(tone_id, architecture=architecture))]
            for model in models:
                verdict = policy.decide(platform, model, installed.get(model.id))
                if verdict == SKIP:
                    what = ("%s %s" % (platform, model.size) if not policy.runs(platform, model.size)
                            else "NAM architecture %s" % model.architecture_version)
                    report["skipped"].append({"id": model.id, "reason": "%s does not run on %s" % (what, self.board)})
                elif verdict == UP_TO_DATE:
                    report["up_to_date"].append(model.id)
                else:
                    self._install(tone_id, platform, model)

    def _install(self, tone_id, platform, model):
        """Download `model` into the cache, then push it; a failure is reported, not raised
        (unless the link itself broke, or this computer's disk is full: HostDiskFull)."""
        from tonebridge.api import downloads

        ref = downloads.ModelRef.from_model(model, tone_id)
        target = os.path.join(cache_dir(), str(model.id), ref.filename)
        try:
            try:
                with output.DownloadProgress("download %s" % ref.filename) as progress:
                    done = downloads.download(self.conn, ref, target, force=True, on_progress=progress.update)
            except (ToneError, OSError) as error:
                if _disk_full(error):
                    raise HostDiskFull(self._host_full(model, target)) from None
                raise
            if not self.policy.fits(done.size):
                self.report["skipped"].append({"id": model.id, "reason": "too large for %s" % self.board})
                return
            with output.DownloadProgress("push %s" % ref.filename) as progress:
                result = self.pedal.push(target, model.id, name=model.name, platform=platform, tone_id=tone_id,
                                         size_class=model.size, updated_at=model.updated_at,
                                         progress=progress.update, sha256=bytes.fromhex(done.sha256))
            self.report["pushed"].append({"id": model.id, "name": model.name, "bytes": result.size,
                                          "seconds": round(result.elapsed_s, 3)})
        except (LinkBroken, HostDiskFull):
            raise  # the link itself failed, or nothing more fits here: stop
        except PedalRefused as error:
            text = str(error)
            if error.code == E_NO_SPACE:  # the pedal's message says what it has free for models
                text = "the pedal is full: %s; the download is kept here in %s" % (text, target)
            self.report["failed"].append({"id": model.id, "error": text})
        except ToneError as error:  # the download failed
            self.report["failed"].append({"id": model.id, "error": str(error)})

    def _host_full(self, model, target):
        """The line for this computer's disk being full while downloading `model`."""
        folder = _existing_folder(os.path.dirname(target))
        part = target + ".part"
        kept = os.path.getsize(part) if os.path.isfile(part) else 0
        what = ("%s of it is kept in %s for the next sync" % (output.human_bytes(kept), part) if kept
                else "nothing of it is kept")
        return ("this computer's disk is full (%s has %s free): model %d was not downloaded, %s; stopped after "
                "pushing %d models, which stay on the pedal (free some space and run the sync again)"
                % (folder, output.human_bytes(shutil.disk_usage(folder).free), model.id, what,
                   len(self.report["pushed"])))


def _disk_full(error):
    """Whether `error` says this computer's disk (or quota) is full."""
    from tonebridge.api import downloads

    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    # downloads' own refusal when a file will not fit (a downloads.py without it: none)
    return isinstance(error, getattr(downloads, "DiskFull", ()))


def _existing_folder(path):
    """`path`, or its nearest ancestor that exists (the disk it is on)."""
    while path and not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path or "."
