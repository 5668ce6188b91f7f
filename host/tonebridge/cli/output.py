"""What the CLI prints: stable JSON, tables, the download progress bar, error lines.

JSON output (`--json`) is the records' `to_json()` dicts, keys sorted, indented by 2:

    whoami --json     {"avatar_url", "bio", "created_at", "id", "links", "updated_at", "url", "username"}
    tones --json      [{"gear", "id", "is_public", "license", "makes", "models_count", "platform",
                        "sizes", "tags", "title", "updated_at", "url", "user", "user_id"}, …]
    models --json     [{"filename", "id", "model_url", "name", "size", "tone_id", "updated_at"}, …]
    download --json   {"model_id", "name", "path", "resumed_from", "retries", "sha256", "size", "tone_id",
                       "unchanged"}

Tables and progress go through rich; progress is drawn on stderr only when it is a
terminal, so stdout stays clean for pipes.  rich is imported by the functions that draw
(error lines and JSON need none of it: every command's start-up stays short).
"""

import json
import sys

import click

PREFIX = "tonebridge: error: "


def emit_json(value):
    """Print `value` as stable JSON (sorted keys) on stdout."""
    click.echo(json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False))


def error_line(message):
    """Print one `tonebridge: error: …` line on stderr (newlines folded; a server's text
    in it, such as an error message, cannot send the terminal escapes: see `plain`)."""
    text = " ".join(plain(message).split())
    click.echo(PREFIX + text, err=True)


def note(message):
    """A progress note on stderr (not part of a command's output)."""
    click.echo(message, err=True)


def _console():
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=True, highlight=False)


def human_bytes(count):
    """A byte count for people: "-" (unknown), "512 B", "294.1 KB", "4 MB"."""
    if count is None:
        return "-"
    for unit, size in (("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= size:
            value = count / size
            return ("%d %s" if value == int(value) else "%.1f %s") % (value, unit)
    return "%d B" % count


def plain(text):
    """`text` from a server, safe for a terminal: control characters (escape sequences
    that retitle a window or move the cursor) become spaces."""
    return "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in str(text))


def _cell(value):
    """A table cell: server text, plain, with rich's markup escaped ([bold red] stays text)."""
    from rich.markup import escape

    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value) or "-"
    return escape(plain(value))


def tones_table(tones, title):
    """A table of Tone records: id, title, platform, gear, sizes, models."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, justify, wrap in (("id", "right", False), ("title", "left", True), ("platform", "left", False),
                                ("gear", "left", False), ("sizes", "left", True), ("models", "right", False)):
        table.add_column(name, justify=justify, no_wrap=not wrap)
    for tone in tones:
        table.add_row(*[_cell(v) for v in (tone.id, tone.title, tone.platform, tone.gear, tone.sizes, tone.models_count)])
    _console().print(table)


def models_table(models, title):
    """A table of Model records: id, name, size, filename."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, justify, wrap in (("id", "right", False), ("name", "left", True), ("size", "left", False),
                                ("filename", "left", True)):
        table.add_column(name, justify=justify, no_wrap=not wrap, overflow="fold")
    for model in models:
        table.add_row(_cell(model.id), _cell(model.name), _cell(model.size), _cell(model.filename))
    _console().print(table)


class DownloadProgress:
    """A rich progress bar (bytes, total, rate, time left) on stderr, if it is a terminal.

    Use as a context manager; `update(done, total)` is the downloads' on_progress.
    """

    def __init__(self, label, enabled=None):
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        console = Console(file=sys.stderr)
        if enabled is None:
            enabled = console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task(label, total=None)

    def __enter__(self):
        self._progress.start()
        return self

    def __exit__(self, *exc):
        self._progress.stop()
        return False

    def update(self, done, total):
        self._progress.update(self._task, completed=done, total=total)
