"""Model downloads on the host: find a model, fetch it resumably, install it atomically.

The core's DownloadPlan makes every decision (Range, If-Range, restart on a 200, what a
cut means, verification); this module owns the files:

    <out>.part        the bytes so far (appended to on resume)
    <out>.part.json   {"model_id", "url", "etag"}: which download the .part belongs to
    <out>             installed with os.replace only after length, SHA-256 and format
                      were verified and the .part was fsynced

While a large download runs, a helper thread fdatasyncs the .part every few MiB
(`BackgroundSync`), so the final fsync only has the last bytes left to write instead
of the whole file: on a fast link that fsync used to take as long as the transfer.

A later run of the same download finds the .part; the plan decides whether it is this
download (`DownloadPlan.resume`: same model id and URL in the sidecar), reads its bytes
back through this module's file (so the SHA-256 covers the whole file) and asks only
for the rest.

Nothing a server sends can fill the disk: a download is refused when the server
announces more than MAX_MODEL_FILE_BYTES (no model file is larger) or more than the
disk holds (`DiskFull`, "not enough space on <folder>: need X, Y free"), and stopped
when a body of unknown length passes the cap (`ModelTooLarge`, the .part removed).  A
disk that fills up anyway (another program) is a DiskFull naming the disk and what is
kept: the .part, resumable.

The v1 API has no "model by id" endpoint, so `find_model` walks the models of the
user's favorited and created tones and remembers every model it saw in
`model-index.json` in the config home.
"""

import errno
import os
import shutil
import threading

from tonecore.formats import EXTENSIONS, extension
from tonecore.download import DownloadPlan
from tonecore.errors import Forbidden, IntegrityError, NotFound, ToneError

from tonebridge.fileio import ensure_private_dir, file_sha256, fsync_dir, read_json, write_json

INDEX_FILE = "model-index.json"
READ_CHUNK = 64 * 1024
SYNC_EVERY = 4 * 1024 * 1024  # a .part is synced in the background after each such many bytes
# No model file is larger: the largest real ones are impulse responses of a few MB and
# custom NAM models of about 1 MB.  A download announced or running past this is refused.
MAX_MODEL_FILE_BYTES = 64 * 1024 * 1024
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class FileConflict(ToneError):
    """The output file exists with other content and --force was not given."""


class Interrupted(ToneError):
    """The user pressed Ctrl-C; the partial download is kept for a later resume."""


class DiskFull(ToneError):
    """The download does not fit on the disk of its folder (a local problem)."""


class ModelTooLarge(IntegrityError):
    """The server announced or sent more than any model file can be."""


def _size_text(count):
    """A size in a message: "512 bytes", "19.0 KB", "64.0 MB"."""
    if count < 1024:
        return "%d bytes" % count
    if count < 1024 * 1024:
        return "%.1f KB" % (count / 1024.0)
    return "%.1f MB" % (count / (1024.0 * 1024.0))


class ModelRef:
    """What is needed to download one model: its id, tone, URL, name and file name."""

    def __init__(self, model_id, tone_id, url, name, filename):
        self.id = model_id
        self.tone_id = tone_id
        self.url = url
        self.name = name
        self.filename = safe_filename(filename, model_id)

    @classmethod
    def from_model(cls, model, tone_id=None):
        tone = model.tone_id if model.tone_id is not None else tone_id
        return cls(model.id, tone, model.model_url, model.name, model.filename)

    def to_record(self):
        return {"tone_id": self.tone_id, "url": self.url, "name": self.name, "filename": self.filename}

    @classmethod
    def from_record(cls, model_id, record):
        return cls(model_id, record.get("tone_id"), record["url"], record.get("name"), record.get("filename"))


def safe_filename(name, model_id):
    """`name` if it is a plain file name of a model format (an extension of
    tonecore.formats.EXTENSIONS, no leading dot, no control characters, no path), else
    "model-<id><ext>" with the name's extension when it is a model's, ".bin" otherwise.
    A server's `model_url` ending in "/.zshenv" must not write ./.zshenv."""
    name = name or ""
    ext = extension(name)
    plain = (name not in (".", "..") and not name.startswith(".") and len(name) <= 200
             and not any(c in name for c in "/\\") and all(ord(c) >= 32 and ord(c) != 127 for c in name))
    if plain and ext in EXTENSIONS:
        return name
    return "model-%s%s" % (model_id, ext if ext in EXTENSIONS else ".bin")


class ModelIndex:
    """model id -> ModelRef for each API, kept in `model-index.json` of the config home."""

    def __init__(self, home, api_base):
        self.path = os.path.join(home, INDEX_FILE)
        self.home = home
        self.api_base = api_base
        self._data = None

    def _load(self):
        if self._data is None:
            try:
                data = read_json(self.path)
            except (ValueError, UnicodeError, OSError):
                data = None  # a cache: damaged means empty
            if not isinstance(data, dict) or not isinstance(data.get("apis"), dict):
                data = {"apis": {}}
            self._data = data
        models = self._data["apis"].get(self.api_base)
        if not isinstance(models, dict):
            models = self._data["apis"][self.api_base] = {}
        return models

    def get(self, model_id):
        record = self._load().get(str(model_id))
        try:
            return ModelRef.from_record(model_id, record) if isinstance(record, dict) else None
        except (KeyError, TypeError):
            return None

    def add(self, ref):
        self._load()[str(ref.id)] = ref.to_record()

    def forget(self, model_id):
        self._load().pop(str(model_id), None)

    def save(self):
        """Write the index (best effort: it is only a cache)."""
        if self._data is None:
            return
        try:
            ensure_private_dir(self.home)
            write_json(self.path, self._data)
        except OSError:
            pass


def remember_models(index, models, tone_id=None):
    """ModelRefs of Model records, added to `index` unless it is None."""
    refs = [ModelRef.from_model(model, tone_id) for model in models]
    if index is not None:
        for ref in refs:
            index.add(ref)
    return refs


def find_model(conn, model_id, tone_id=None, index=None, notify=None):
    """The ModelRef of `model_id`, from `--tone`, the index, or a walk of your tones.

    Args:
        conn: a transport.Connection.
        tone_id: look only in this tone's models.
        index: a ModelIndex (updated and saved), or None.
        notify: function(str) for a progress note during a walk.
    Raises:
        NotFound: the model is not where we looked.
    """
    client = conn.client
    if tone_id is not None:
        refs = [ModelRef.from_model(model, tone_id) for model in conn.run(client.all_models(tone_id))]
        if index is not None:
            for ref in refs:
                index.add(ref)
            index.save()
        for ref in refs:
            if ref.id == model_id:
                return ref
        raise NotFound("model %d is not one of the models of tone %d" % (model_id, tone_id), 404)
    if index is not None:
        ref = index.get(model_id)
        if ref is not None:
            return ref
    if notify:
        notify("looking for model %d among the models of your tones..." % model_id)
    seen = set()
    try:
        for which in ("favorited", "created"):
            for tone in conn.run(client.all_tones(which)):
                if tone.id in seen:
                    continue
                seen.add(tone.id)
                for ref in remember_models(index, conn.run(client.all_models(tone.id)), tone.id):
                    if ref.id == model_id:
                        return ref
    finally:
        if index is not None:
            index.save()
    raise NotFound(
        "model %d is not among the models of your favorited or created tones; "
        "favorite its tone, or pass --tone TONE_ID" % model_id,
        404,
    )


def target_path(output, filename):
    """Where to install: `output` if it names a file, `output/filename` if it is a
    directory (existing, or written with a trailing slash), `./filename` if None."""
    if not output:
        return os.path.abspath(filename)
    if os.path.isdir(output) or output.endswith(("/", os.sep)):
        return os.path.abspath(os.path.join(output, filename))
    return os.path.abspath(output)


class BackgroundSync:
    """Syncs a file that is being written, in a helper thread, every `every` bytes.

    Use as a context manager around the writes, and call `wrote(count)` after each one;
    the thread starts at the first sync (small files never start one).  Leaving the block
    lets it finish the sync asked for, if any, then joins it: nothing touches the file
    descriptor afterwards.  The writer still fsyncs the file itself; that fsync finds
    little left to do.

    Linux reports a write-back error to only one of the syncs of an open file, so an
    error the helper met is kept: `check()` raises it.
    """

    def __init__(self, file, every=None):
        self.file = file
        self.every = every or SYNC_EVERY
        self.error = None
        self._unsynced = 0
        self._cond = threading.Condition()
        self._asked = False
        self._stopping = False
        self._thread = None

    def wrote(self, count):
        """Note `count` more bytes written; past the threshold, ask the helper to sync."""
        self._unsynced += count
        if self._unsynced < self.every:
            return
        self._unsynced = 0
        self.file.flush()  # hand buffered bytes to the OS first
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(self.file.fileno(),),
                                            name="tonebridge-sync", daemon=True)
            self._thread.start()
        with self._cond:
            self._asked = True
            self._cond.notify()

    def _run(self, fd):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._asked or self._stopping)
                if not self._asked:
                    return
                self._asked = False
            try:
                _datasync(fd)
            except OSError as error:
                self.error = error
                return

    def check(self):
        """Raise the OSError a background sync met, if any."""
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify()
            self._thread.join()
            self._thread = None
        return False


class PartSink:
    """Writes a download into the open .part file, reporting progress.

    `truncate()` empties it (the plan restarted from 0).  Whenever the plan learns a new
    ETag, the sidecar is rewritten so a later run resumes with If-Range.  `sync`, a
    BackgroundSync, hears of every write.  Once a response says how large the file is,
    the first write checks it against `limit` and against the free space of `folder`;
    a body of unknown length is stopped when it passes `limit`.

    Raises (from write):
        ModelTooLarge: more than `limit` bytes, announced or sent.
        DiskFull: the rest of the file does not fit on the disk.
    """

    def __init__(self, file, plan, size, on_etag=None, on_progress=None, sync=None, what=None, folder=None,
                 limit=None):
        self.file = file
        self.plan = plan
        self.size = size
        self.on_etag = on_etag
        self.on_progress = on_progress
        self.sync = sync
        self.what = what or plan.filename
        self.folder = folder
        self.limit = limit or MAX_MODEL_FILE_BYTES
        self._etag = plan.etag
        self._checked_total = None

    def write(self, chunk):
        if self.plan.etag != self._etag:
            self._etag = self.plan.etag
            if self.on_etag:
                self.on_etag(self._etag)
        total = self.plan.total
        if total is not None and total != self._checked_total:
            self._check_room(total)
            self._checked_total = total
        if self.size + len(chunk) > self.limit:
            raise ModelTooLarge("%s: the server sent more than %s, more than any model file; stopped"
                                % (self.what, _size_text(self.limit)))
        self.file.write(chunk)
        self.size += len(chunk)
        if self.sync:
            self.sync.wrote(len(chunk))
        if self.on_progress:
            self.on_progress(self.size, self.plan.total)

    def _check_room(self, total):
        """Before the first byte of a body whose file is `total` bytes long."""
        if total > self.limit:
            raise ModelTooLarge("%s: the server announced %s, more than any model file (at most %s); refused"
                                % (self.what, _size_text(total), _size_text(self.limit)))
        if self.folder is None:
            return
        need = total - self.size
        free = shutil.disk_usage(self.folder).free
        if need > free:
            raise DiskFull("not enough space on %s: need %s, %s free" % (self.folder, _size_text(need),
                                                                        _size_text(free)))

    def truncate(self):
        self.file.seek(0)
        self.file.truncate(0)
        self.size = 0
        if self.on_progress:
            self.on_progress(0, self.plan.total)


class Result:
    """A finished download: where, how big, its SHA-256, and what happened.

    Attributes:
        resumed_from: bytes taken from a .part left by an earlier run.
        retries: failed attempts (cut connections, bad ranges) retried in this run.
        unchanged: the file was already there with the same content.
    """

    def __init__(self, path, size, sha256, resumed_from=0, retries=0, unchanged=False):
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.resumed_from = resumed_from
        self.retries = retries
        self.unchanged = unchanged

    def to_json(self):
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "resumed_from": self.resumed_from,
                "retries": self.retries, "unchanged": self.unchanged}


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def download(conn, ref, target, force=False, on_progress=None):
    """Download `ref` to `target` through `<target>.part`, resuming a previous .part.

    Args:
        conn: a transport.Connection.
        on_progress: function(bytes_in_part, total_or_None), called for every chunk.
    Returns:
        a Result.
    Raises:
        FileConflict: `target` exists with different content and not `force`
            (the verified download is left in the .part).
        Interrupted: Ctrl-C (the .part is kept for resume).
        IntegrityError: the bytes were wrong, or more than any model file
            (ModelTooLarge); the .part is removed.
        DiskFull: the file does not fit, or the disk filled up (the .part is kept).
        ToneError: any other failure (the .part is kept if it has bytes).
    """
    if os.path.isdir(target):
        raise FileConflict("%s is a directory" % target)
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    part = target + ".part"
    sidecar = part + ".json"
    identity = {"model_id": ref.id, "url": ref.url}  # what the sidecar must say to resume
    plan = DownloadPlan(ref.url, ref.filename)

    def save_sidecar(etag):
        record = dict(identity)
        record["etag"] = etag
        write_json(sidecar, record)

    sha, resumed_from = _fetch(conn, ref, plan, part, identity, save_sidecar, on_progress)
    if os.path.exists(target) and not force:
        if file_sha256(target) == sha:
            _remove(part)
            _remove(sidecar)
            return Result(target, plan.offset, sha, resumed_from, plan.retries, unchanged=True)
        raise FileConflict(
            "%s exists and differs from the download; the verified download is in %s: "
            "rerun with --force to replace the file" % (target, part)
        )
    os.replace(part, target)
    fsync_dir(directory)
    _remove(sidecar)
    return Result(target, plan.offset, sha, resumed_from, plan.retries)


def _open_part(path):
    """The .part at `path` for reading and writing, created empty when missing; never
    through a symbolic link (O_NOFOLLOW: a link planted there must not
    make the download write elsewhere)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o666)  # as open() would: the umask decides
    except OSError:
        if os.path.islink(path):
            raise FileConflict("%s is a symbolic link; remove it and run the command again" % path) from None
        raise
    return os.fdopen(fd, "r+b")


def _fetch(conn, ref, plan, part, identity, save_sidecar, on_progress):
    """Resume `part` if the plan says it is this download (else empty it), run the
    core's download into it, fsync it.

    Returns:
        (the verified SHA-256, the bytes taken over from an earlier run).  On failure
        the .part is kept when it holds bytes (and the error says so), removed when it
        is empty or its bytes are wrong.
    """
    what = "model %d (%s)" % (ref.id, ref.filename)
    f = _open_part(part)
    try:
        resumed_from = plan.resume(_read_sidecar(part + ".json"), identity, os.fstat(f.fileno()).st_size,
                                   f.readinto, bytearray(READ_CHUNK))
        f.seek(resumed_from)
        f.truncate(resumed_from)  # not this download: empty; bytes past what was read: not accounted for
        save_sidecar(plan.etag)  # before the first byte: a .part always says what it belongs to
        with BackgroundSync(f) as sync:  # its thread is gone after the block, whatever happened
            sink = PartSink(f, plan, plan.offset, save_sidecar, on_progress, sync, what,
                            os.path.dirname(part) or ".")
            if on_progress:
                on_progress(plan.offset, None)
            sha = conn.run(conn.client.download(plan, sink, what))
            f.flush()
        sync.check()
        os.fsync(f.fileno())
        f.close()
        return sha, resumed_from
    except KeyboardInterrupt:
        _close_quietly(f)
        save_sidecar(plan.etag)
        raise Interrupted(
            "interrupted; %d bytes are kept in %s: run the same command again to resume" % (_size(part), part)
        ) from None
    except IntegrityError as error:
        _close_quietly(f)
        _remove(part)
        _remove(part + ".json")
        raise IntegrityError("%s (the partial file was removed)" % error) from None
    except ToneError as error:
        _close_quietly(f)
        kept = _size(part)
        if kept:
            save_sidecar(plan.etag)
            error.message = "%s (%d bytes are kept in %s: run the same command again to resume)" % (
                error.message, kept, part)
        else:
            _remove(part)
            _remove(part + ".json")
        raise
    except OSError as error:
        _close_quietly(f)
        if error.errno not in _DISK_FULL:
            raise
        raise _disk_filled(part, plan, save_sidecar) from None
    except BaseException:
        _close_quietly(f)
        raise


def _disk_filled(part, plan, save_sidecar):
    """The DiskFull for a disk that filled up while the .part was written: which disk,
    how much is free, what is kept (the .part: the next run resumes from it)."""
    folder = os.path.dirname(part) or "."
    try:
        save_sidecar(plan.etag)
    except OSError:
        pass  # the sidecar written before the first byte still names this download
    try:
        free = _size_text(shutil.disk_usage(folder).free)
    except OSError:
        free = "?"
    kept = _size(part)
    if not kept:
        _remove(part)
        _remove(part + ".json")
        return DiskFull("the disk of %s is full (%s free); nothing was kept: free some space and run the same "
                        "command again" % (folder, free))
    return DiskFull("the disk of %s filled up (%s free); %d bytes are kept in %s: free some space and run the "
                    "same command again to resume" % (folder, free, kept, part))


def _read_sidecar(path):
    try:
        data = read_json(path)
    except (ValueError, UnicodeError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _close_quietly(f):
    try:
        f.flush()
    except OSError:
        pass  # a full disk: what was not written is not in the .part, which stays a prefix
    try:
        f.close()
    except OSError:
        pass


def download_model(conn, model_id, target_of, index=None, tone_id=None, force=False, on_progress=None, notify=None):
    """Find `model_id` and download it; a stale index entry is looked up again once.

    Args:
        target_of: function(ModelRef) -> the path to install to.
    Returns:
        (ModelRef, Result).
    """
    from_index = tone_id is None and index is not None and index.get(model_id) is not None
    ref = find_model(conn, model_id, tone_id, index, notify)
    try:
        return ref, download(conn, ref, target_of(ref), force, on_progress)
    except (NotFound, Forbidden):
        if not from_index:
            raise
        index.forget(model_id)
        fresh = find_model(conn, model_id, None, index, notify)
        if fresh.url == ref.url:
            raise
        return fresh, download(conn, fresh, target_of(fresh), force, on_progress)
