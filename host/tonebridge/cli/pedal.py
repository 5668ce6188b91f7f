"""`tonebridge pedal …`: a pedal on USB serial.

    tonebridge pedal info      [--port PORT] [--json]   board, free flash, link limits
    tonebridge pedal ls        [--port PORT] [--json]   the models installed
    tonebridge pedal push FILE [--id N] [--name] [--platform] [--activate] [--json]
    tonebridge pedal rm MODEL / activate MODEL [--json] MODEL: an id or an exact name
    tonebridge pedal sync      [--port PORT] [--json]   your favorites, downloaded here
                                                        and pushed where missing

`--port auto` (the default, or $TONEBRIDGE_PORT) finds the one ESP32 board on USB by
its USB ids.  Opening the port does not reset the board.  Pushes resume: run the same
push again after an unplug and it continues where the pedal's flash ends.
"""

import hashlib
import os

import click
import platformdirs

from tonecore.errors import LinkBroken, PedalRefused, ToneError, UsageError

from tonebridge.cli import output
from tonebridge.cli.common import EXIT_PEDAL
from tonebridge.link.session import DEFAULT_BAUD, PedalLink

PORT_ENV = "TONEBRIDGE_PORT"
CACHE_ENV = "TONEBRIDGE_CACHE"
LOCAL_IDS = 1 << 30  # a file that is not from TONE3000 gets an id from here up
PLATFORMS = {".nam": "nam", ".wav": "ir", ".json": "aida-x", ".aidax": "aida-x"}


def port_options(command):
    command = click.option("--baud", type=click.IntRange(min=300), default=DEFAULT_BAUD, show_default=True,
                           help="Line rate for a UART bridge (native USB ignores it).")(command)
    command = click.option("--port", envvar=PORT_ENV, default="auto", show_default=True,
                           help="The serial port, or `auto` to find the pedal by USB id [env: %s]." % PORT_ENV)(command)
    return command


def json_option(command):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(command)


def connect(port, baud):
    return PedalLink.open_port(port, baud)


def _size(count):
    if count is None:
        return "-"
    for unit in ("B", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1024.0


@click.group(name="pedal")
def pedal_group():
    """A pedal on USB serial: look, push, sync, manage."""


@pedal_group.command()
@port_options
@json_option
def info(port, baud, as_json):
    """What the pedal says about itself: board, free flash, link limits."""
    with connect(port, baud) as pedal:
        data = dict(pedal.info)
        models, active = pedal.models()
        data.update({"models": len(models), "active": active, "port": pedal.port.port})
    if as_json:
        output.emit_json(data)
        return
    click.echo("%s on %s (firmware %s, protocol %s)" % (data["board"], data["port"], data["firmware"], data["protocol"]))
    click.echo("  %d models installed, active %s; %s free" % (data["models"], data["active"] or "-", _size(data["free_bytes"])))
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
            _size(model.bytes), (model.sha256 or "")[:12]))


@pedal_group.command()
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@port_options
@click.option("--id", "model_id", type=click.IntRange(min=1), help="The TONE3000 model id [default: one derived from "
              "the file's SHA-256, for a file that is not from TONE3000].")
@click.option("--name", help="The name the pedal shows [default: the file name].")
@click.option("--platform", help="nam, ir, aida-x, proteus… [default: from the file's extension].")
@click.option("--activate", is_flag=True, help="Make it the active model once installed.")
@click.option("--no-compress", is_flag=True, help="Never send deflated chunks.")
@json_option
def push(path, port, baud, model_id, name, platform, activate, no_compress, as_json):
    """Send FILE to the pedal: verified there, installed atomically, resumable."""
    if not os.path.isfile(path):
        raise UsageError("no such file: %s" % path)
    sha = _sha256(path)
    if model_id is None:
        model_id = LOCAL_IDS + int.from_bytes(sha[:3], "big")
    ext = os.path.splitext(path)[1].lower()
    platform = platform or PLATFORMS.get(ext)
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
        model_id, result.size, result.elapsed_s, _size(rate), "; " + "; ".join(notes) if notes else ""))
    click.echo("  sha256 %s, verified on the pedal%s" % (result.sha256, "; now active" if activate else ""))


def _model_id(pedal, model):
    """The id of MODEL: an id, or the exact name of one installed model."""
    models, _ = pedal.models()
    if model.isdigit():
        return int(model)
    named = [m for m in models if m.name == model]
    if len(named) == 1:
        return named[0].id
    if not named:
        raise UsageError("no model named %r on the pedal (see `tonebridge pedal ls`)" % model)
    raise UsageError("%d models are named %r; use the id" % (len(named), model))


def _manage(action, model, port, baud):
    """`rm` and `activate`: find MODEL's id, then delete or activate it."""
    with connect(port, baud) as pedal:
        model_id = _model_id(pedal, model)
        if action == "delete":
            pedal.delete(model_id)
        else:
            pedal.activate(model_id)
    return model_id


@pedal_group.command()
@click.argument("model")
@port_options
@json_option
def rm(model, port, baud, as_json):
    """Delete MODEL (an id or a name) from the pedal."""
    model_id = _manage("delete", model, port, baud)
    if as_json:
        output.emit_json({"id": model_id, "deleted": True})
    else:
        click.echo("Deleted model %d from the pedal." % model_id)


@pedal_group.command()
@click.argument("model")
@port_options
@json_option
def activate(model, port, baud, as_json):
    """Make MODEL (an id or a name) the pedal's active model."""
    model_id = _manage("activate", model, port, baud)
    if as_json:
        output.emit_json({"id": model_id, "active": True})
    else:
        click.echo("Model %d is now active." % model_id)


def cache_dir():
    """Where `pedal sync` keeps the models it downloads ($TONEBRIDGE_CACHE, else the
    user's cache directory)."""
    return os.path.join(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("tonebridge"), "models")


@pedal_group.command()
@port_options
@click.option("--api", "api", metavar="URL", help="The TONE3000 API URL (as for the other commands).")
@json_option
@click.pass_context
def sync(ctx, port, baud, api, as_json):
    """Download your favorites here and push to the pedal what it lacks."""
    from tonebridge.api import downloads
    from tonebridge.cli.common import open_connection
    from tonebridge.boards.firmware import load_board

    if api:
        ctx.find_root().meta["tonebridge.api"] = api  # as cli.api_option does
    report = {"pushed": [], "up_to_date": [], "skipped": [], "failed": []}
    with connect(port, baud) as pedal:
        try:
            board = load_board(pedal.info["board"])
        except ToneError:
            board = None
        installed = {m.id: m for m in pedal.models()[0]}
        with open_connection(ctx) as conn:
            wanted = _favorites(conn, board, report)
            limit = board.max_model_bytes if board is not None else None
            for tone, model in wanted:
                have = installed.get(model.id)
                if have is not None and (have.updated_at or "") == (model.updated_at or ""):
                    report["up_to_date"].append(model.id)
                    continue
                ref = downloads.ModelRef.from_model(model, tone.id)
                target = os.path.join(cache_dir(), str(model.id), ref.filename)
                try:
                    with output.DownloadProgress("download %s" % ref.filename) as progress:
                        done = downloads.download(conn, ref, target, force=True, on_progress=progress.update)
                    if limit and done.size > limit:
                        report["skipped"].append({"id": model.id, "reason": "too large for %s" % board.name})
                        continue
                    with output.DownloadProgress("push %s" % ref.filename) as progress:
                        result = pedal.push(target, model.id, name=model.name, platform=tone.platform,
                                            tone_id=tone.id, size_class=model.size, updated_at=model.updated_at,
                                            progress=progress.update, sha256=bytes.fromhex(done.sha256))
                    report["pushed"].append({"id": model.id, "name": model.name, "bytes": result.size,
                                             "seconds": round(result.elapsed_s, 3)})
                except LinkBroken:
                    raise  # the link itself failed: stop
                except PedalRefused as error:
                    report["failed"].append({"id": model.id, "error": str(error)})
                except ToneError as error:
                    report["failed"].append({"id": model.id, "error": str(error)})
    if as_json:
        output.emit_json(report)
    else:
        click.echo("Pushed %d, up to date %d, skipped %d, failed %d." % (
            len(report["pushed"]), len(report["up_to_date"]), len(report["skipped"]), len(report["failed"])))
        for item in report["failed"]:
            click.echo("  model %d: %s" % (item["id"], item["error"]))
    if report["failed"]:
        ctx.exit(EXIT_PEDAL)


def _favorites(conn, board, report):
    """(tone, model) of every favorited tone's models the board can run."""
    wanted = []
    for tone in conn.run(conn.client.all_tones("favorited")):
        for model in conn.run(conn.client.all_models(tone.id)):
            if board is not None and not board.can_run(tone.platform, model.size):
                report["skipped"].append({"id": model.id, "reason": "%s %s does not run on %s" % (
                    tone.platform, model.size, board.name)})
                continue
            wanted.append((tone, model))
    return wanted


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()
