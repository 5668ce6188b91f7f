"""Browsing and downloading: `tones`, `models`, `download`."""

import click

from tonebridge.cli import output
from tonebridge.cli.common import api_option, open_connection
from tonecore.errors import ToneError


@click.command()
@api_option
@click.option("--favorited", is_flag=True, help="Tones you favorited (the default).")
@click.option("--created", is_flag=True, help="Tones you created.")
@click.option("--json", "as_json", is_flag=True, help="Print the tones as JSON.")
@click.pass_context
def tones(ctx, favorited, created, as_json):
    """List your favorited (or created) tones, all pages."""
    if favorited and created:
        raise click.UsageError("--favorited and --created exclude each other: list one kind at a time", ctx)
    which = "created" if created else "favorited"
    with open_connection(ctx) as conn:
        items = conn.run(conn.client.all_tones(which))
    if as_json:
        output.emit_json([tone.to_json() for tone in items])
    elif not items:
        click.echo("No %s tones." % which)
    else:
        output.tones_table(items, "%s tones (%d)" % (which.capitalize(), len(items)))


@click.command()
@api_option
@click.argument("tone_id", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the models as JSON.")
@click.pass_context
def models(ctx, tone_id, as_json):
    """List the models of tone TONE_ID."""
    from tonebridge.api import downloads
    from tonebridge.api.token_store import config_home

    with open_connection(ctx) as conn:
        items = conn.run(conn.client.all_models(tone_id))
    index = downloads.ModelIndex(config_home(), conn.api_base)
    downloads.remember_models(index, items, tone_id)
    index.save()
    if as_json:
        output.emit_json([model.to_json() for model in items])
    elif not items:
        click.echo("Tone %d has no models." % tone_id)
    else:
        output.models_table(items, "Models of tone %d (%d)" % (tone_id, len(items)))


@click.command()
@api_option
@click.argument("model_id", type=click.IntRange(min=1))
@click.option("--tone", "tone_id", type=click.IntRange(min=1), help="The model's tone (skips the search).")
@click.option("-o", "--output", "out", metavar="PATH",
              help="A file, or a directory (an existing one, or ending in /); default: the current directory.")
@click.option("--force", is_flag=True, help="Replace an existing file with different content.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def download(ctx, model_id, tone_id, out, force, as_json):
    """Download model MODEL_ID: resumable, verified, installed atomically."""
    from tonebridge.api import downloads
    from tonebridge.api.token_store import config_home

    targets = []  # the file being downloaded, once known

    def target_of(ref):
        targets.append(downloads.target_path(out, ref.filename))
        return targets[-1]

    with open_connection(ctx) as conn:
        index = downloads.ModelIndex(config_home(), conn.api_base)
        try:
            with output.DownloadProgress("model %d" % model_id) as progress:
                ref, result = downloads.download_model(
                    conn, model_id, target_of, index, tone_id, force, progress.update, output.note
                )
        except OSError as error:  # the destination cannot be written: name it, not its .part
            if not targets:
                raise
            reason = error.strerror or str(error)
            raise ToneError("cannot save %s: %s" % (targets[-1], reason[:1].lower() + reason[1:])) from None
    if as_json:
        record = result.to_json()
        record.update({"model_id": ref.id, "name": ref.name, "tone_id": ref.tone_id})
        output.emit_json(record)
        return
    if result.unchanged:
        click.echo("%s is already up to date (%d bytes, sha256 %s)" % (result.path, result.size, result.sha256))
        return
    notes = []
    if result.resumed_from:
        notes.append("resumed from byte %d" % result.resumed_from)
    if result.retries:
        notes.append("recovered from %d interrupted transfer%s" % (result.retries, "" if result.retries == 1 else "s"))
    click.echo("Saved %s%s" % (result.path, " (%s)" % "; ".join(notes) if notes else ""))
    click.echo("  %d bytes, sha256 %s" % (result.size, result.sha256))

