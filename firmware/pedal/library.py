"""The model library on the pedal's flash (littlefs), safe against power loss.

Layout under the flash root:

    library.json            the manifest: installed models and the active one (one
                            JSON document, one model a line; read a piece at a time)
    session.json            the TONE3000 tokens (see tokens.py)
    models/<id>-<sha8>.<ext>   an installed model; the name changes with the content,
                            so a new version never overwrites the file the manifest
                            still points at
    models/<id>.part        a model arriving: a Wi-Fi download or a USB push
    models/<id>.part.json   which transfer that .part belongs to, for resuming:
                            {id, updated_at, etag} for a download, {id, source: "usb",
                            size, sha256} for a push

Every model arrives the same way, through a `PartFile` (`Library.open_part`): the .part
is resumed when its sidecar names the same transfer (the core decides and re-reads the
bytes already there into the checks), space is reserved once the length is known,
writes are flushed periodically, the core's checks verify length, SHA-256 and format,
and only then is it installed.

Every JSON file is replaced atomically: written to `<name>.tmp`, synced, renamed over
the old one (littlefs renames atomically).  Install order: verify the .part -> rename
it to its final name -> rewrite the manifest -> delete the file of the version it
replaced.  A crash at any point leaves the manifest pointing at complete, verified
files; `recover()` at boot deletes leftovers (temporaries and files no manifest entry
owns) and keeps .part files for resuming.

Bounded, because every model costs heap: at most `max_models` entries (the board's
MAX_MODELS); one more is refused with TooManyModels ("library full").  The manifest is
read a piece at a time (`_manifest_objects`: one model's JSON at a time, whatever the
line breaks), never whole: a damaged entry is skipped, entries past the bound or past
`max_manifest_bytes()` are left out (`note` says so and the manifest is rewritten with
what was kept); running out of memory while reading leaves the library empty and
read-only for this start (`read_only` says why), never a crash.
"""

import gc
import json
import os
from binascii import unhexlify

from tonecore.compat import hexlify
from tonecore.download import resume_offset
from tonecore.errors import IntegrityError, ToneError
from tonecore.formats import EXTENSIONS, extension, fits
from tonecore.link import E_NO_SPACE, E_NOT_FOUND, E_STORAGE, E_TOO_LARGE
from tonecore.records import PLATFORMS, SIZES

# A manifest entry in RAM is a tuple in this order (about half the heap of a dict), its
# sha256 as 32 bytes (hex on flash) and, instead of the file name, only its extension
# (the name is <id>-<sha8><ext>); on flash each is a JSON object with these keys.
FIELDS = ("id", "tone_id", "name", "platform", "size", "bytes", "sha256", "updated_at", "file")
ID, TONE, NAME, PLATFORM, SIZE, BYTES, SHA, UPDATED, EXT = range(9)

MANIFEST = "library.json"
MODELS = "models"
HEAP_PER_MODEL = 2048  # MAX_MODELS when a board names none: HEAP_BUDGET // this (boards/README.md)
ENTRY_MAX = 1024  # bytes of one model's JSON in the manifest; a longer one is damaged
NAME_MAX = 80  # characters of a model's name kept (the heap of an entry stays bounded)
TEXT_MAX = 40  # characters kept of updated_at (a version stamp, compared for equality)
SPARE_BLOCKS = 16  # kept free beyond a model arriving: manifest rewrites, littlefs metadata
SYNC_EVERY = 256 * 1024  # a downloading .part is synced (made durable) after this many bytes
ENOSPC = 28
USB = "usb"  # the sidecar "source" of a USB push: a sync leaves such a .part alone


class LibraryError(ToneError):
    """The library cannot do that (unknown model, damaged manifest).

    `link_code` is the USB link's ERROR code for it (tonecore.link)."""

    link_code = E_STORAGE


class NotInstalled(LibraryError):
    """No installed model has that id."""

    link_code = E_NOT_FOUND


class LibraryFull(LibraryError):
    """Not enough flash for a model; nothing was installed."""

    link_code = E_NO_SPACE


class TooManyModels(LibraryFull):
    """The library holds the most models this board keeps (its MAX_MODELS); nothing was
    installed."""


class TooLarge(LibraryError):
    """The model is larger than this board stores (its MAX_MODEL_BYTES); skipped."""

    link_code = E_TOO_LARGE


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _size(path):
    """Bytes in the file at `path`; None when there is none."""
    try:
        return os.stat(path)[6]
    except OSError:
        return None


def _remove(path):
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def write_json(path, data):
    """Replace the JSON file at `path` atomically (tmp, sync, rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
    os.rename(tmp, path)


def read_json(path, default=None):
    """The JSON at `path`, or `default` when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _unhex(text):
    """32 bytes from a SHA-256 in hex (None stays None: the entry then never verifies)."""
    try:
        return unhexlify(text) if text and isinstance(text, str) else None
    except ValueError:
        return None


def _text(value, limit):
    """`value` cut to `limit` characters when it is a string, else None."""
    if not isinstance(value, str):
        return None
    return value[:limit] if len(value) > limit else value


def _manifest_objects(f, limit, head):
    """The models of a manifest, one JSON object (bytes) at a time, from the binary file
    `f`, in any layout (ours: one model a line, where a damaged line costs that model
    only; an older firmware's: all on one line).

    Reads 256 bytes at a time and stops after `limit` bytes.  The top level, without the
    models array's contents (`{"version": 1, "active": 5, "models": []}`), is collected
    into the bytearray `head`, up to 256 bytes.  An object longer than ENTRY_MAX is
    yielded as None (damaged).
    """
    depth = 0
    quoted = escaped = False
    item = None  # the bytes of the model being read; None between models
    chunk = bytearray(256)
    read = 0
    while read < limit:
        count = f.readinto(chunk)
        if not count:
            break
        read += count
        for byte in memoryview(chunk)[:count]:
            if byte == 0x0A and (quoted or depth > 2 or depth == 1):
                # JSON strings hold no raw line break, and in our layout every line but
                # the last ends in the models array: whatever broke this line, the next
                # one starts a model again
                quoted = escaped = False
                depth = 2
                if item is not None:
                    item = None
                    yield None
                continue
            outer = depth < 2 or (depth == 2 and byte == 0x5D)  # the top level, or the array's ]
            if quoted:
                if escaped:
                    escaped = False
                elif byte == 0x5C:  # \
                    escaped = True
                elif byte == 0x22:  # "
                    quoted = False
            elif byte == 0x22:
                quoted = True
            elif byte == 0x7B or byte == 0x5B:  # { [
                depth += 1
                if depth == 3 and byte == 0x7B:
                    item = bytearray()
            elif byte == 0x7D or byte == 0x5D:  # } ]
                depth -= 1
                if depth == 2 and item is not None:
                    item.append(byte)
                    yield item if len(item) <= ENTRY_MAX else None
                    item = None
                    continue
            if item is not None:
                if len(item) <= ENTRY_MAX:
                    item.append(byte)
            elif outer and len(head) < 256:
                head.append(byte)
    if item is not None:
        yield None  # cut off: the file ends (or the limit came) inside a model


def _entry(data):
    """The manifest entry (a tuple in FIELDS order) in the JSON object `data` (bytes).

    Raises:
        ValueError: it is not a model (no integer id, a byte count that is no integer).
    """
    item = json.loads(data)
    if not isinstance(item, dict) or type(item.get("id")) is not int or type(item.get("bytes")) is not int:
        raise ValueError("not a model")
    name = _text(item.get("file"), NAME_MAX) or ""
    tone_id = item.get("tone_id")
    return (item["id"], tone_id if type(tone_id) is int else None, _text(item.get("name"), NAME_MAX),
            _shared(_text(item.get("platform"), TEXT_MAX)), _shared(_text(item.get("size"), TEXT_MAX)), item["bytes"],
            _unhex(item.get("sha256")), _text(item.get("updated_at"), TEXT_MAX),
            _shared(name[name.rfind("."):][:8] if "." in name else ""))


_SHARED = PLATFORMS + SIZES + tuple(EXTENSIONS) + (".bin",)


def _shared(value):
    """`value`, or the equal constant of the core's (one object for every model, not a
    string per entry: ~3 KB less heap for 60 models)."""
    for known in _SHARED:
        if value == known:
            return known
    return value


def file_name(entry):
    """The file of a manifest entry: <id>-<first 8 hex of its sha256><ext>."""
    sha = hexlify(entry[SHA])[:8] if entry[SHA] else "unknown"
    return "%d-%s%s" % (entry[ID], sha, entry[EXT])


def usb_identity(model_id, size, sha):
    """The sidecar of a USB push of `size` bytes with SHA-256 `sha` (32 bytes or None):
    a later push resumes the .part only for the very same file."""
    return {"id": model_id, "source": USB, "size": size, "sha256": hexlify(sha) if sha else None}


class Library:
    """Installed models on the flash mounted at `root` ('' or '/flash').

    Attributes:
        models: the manifest's entries, tuples in FIELDS order.
        active: the id of the active model, or None.
    """

    def __init__(self, root, max_model_bytes=None, max_models=64):
        self.root = root.rstrip("/")
        self.max_model_bytes = max_model_bytes
        self.max_models = max_models
        self.dir = self.root + "/" + MODELS
        self.path = self.root + "/" + MANIFEST
        self.models = []
        self.active = None
        self.note = None  # what was wrong with the manifest this start (for the console and page)
        self.read_only = None  # why nothing may change this start (the manifest could not be read)
        self.load()

    def max_manifest_bytes(self):
        """The most of the manifest that is read: `max_models` entries of ENTRY_MAX."""
        return (self.max_models + 1) * ENTRY_MAX

    def load(self):
        """Read the manifest a model at a time.  Damaged entries are skipped, and entries
        past `max_models` or `max_manifest_bytes()` left out (`note` says so; the manifest
        is then rewritten with what was kept, so that flash and RAM agree); out of memory,
        the library is empty and `read_only` for this start.  Never raises."""
        self.models, self.active, self.note, self.read_only = [], None, None, None
        try:
            self._read()
        except MemoryError:
            self.models = []
            gc.collect()
            self.read_only = ("out of memory while reading the model list; models cannot be added, deleted or "
                              "chosen until the pedal restarts")
            return
        if self.note:
            # the rewrite must name only complete files (a power cut may come right after it)
            self.models = [entry for entry in self.models if _exists(self.file_path(entry))]
            if self.active is not None and self.find(self.active) is None:
                self.active = None
            try:
                self.save()
            except OSError as exc:
                self.read_only = "the model list on flash cannot be rewritten (%s)" % (exc,)

    def _read(self):
        size = _size(self.path)
        if size is None:
            return
        limit = self.max_manifest_bytes()
        head = bytearray()
        damaged = extra = 0
        models = []
        try:
            with open(self.path, "rb") as f:
                for data in _manifest_objects(f, limit, head):
                    if len(models) >= self.max_models:
                        extra += 1
                        break
                    try:
                        entry = _entry(data) if data is not None else None
                    except ValueError:
                        entry = None
                    if entry is None or self._find_in(models, entry[ID]) is not None:
                        damaged += 1
                    else:
                        models.append(entry)
                    data = entry = None
        except OSError as exc:
            self.note = "the model list on flash could not be read to the end (%s)" % (exc,)
        active = None
        for text in (head, head + b"]}"):  # the whole top level; or its first line (read no further)
            try:
                top = json.loads(text)
                active = top.get("active") if isinstance(top, dict) else None
                break
            except ValueError:
                pass
        else:
            damaged += 0 if extra or size > limit else 1
        self.models = models
        self.active = active if type(active) is int and self.find(active) is not None else None
        if damaged:
            self.note = ("the model list on flash was damaged: %d entries could not be read and were dropped, "
                         "%d models kept" % (damaged, len(models)))
        elif extra or size > limit:
            self.note = ("the model list on flash names more models than this pedal keeps: kept the first %d"
                         % len(models))

    def _find_in(self, models, model_id):
        for entry in models:
            if entry[ID] == model_id:
                return entry
        return None

    def save(self):
        """Rewrite the manifest atomically, one entry at a time (no big string)."""
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write('{"version": 1, "active": %s, "models": [' % json.dumps(self.active))
            first = True
            for entry in self.models:
                item = {}
                for at in range(len(FIELDS)):
                    item[FIELDS[at]] = entry[at]
                item["sha256"] = hexlify(entry[SHA]) if entry[SHA] else None
                item["file"] = file_name(entry)
                f.write(("\n" if first else ",\n") + json.dumps(item))
                first = False
            f.write("]}\n")
            f.flush()
        os.rename(tmp, self.path)

    def _commit(self, models, active):
        """Make `models`/`active` the manifest: on flash first; in RAM only once written
        (a failed write leaves both as they were)."""
        if self.read_only:
            raise LibraryError(self.read_only)
        old = self.models, self.active
        self.models, self.active = models, active
        try:
            self.save()
        except BaseException:
            self.models, self.active = old
            raise

    def file_path(self, entry):
        return self.dir + "/" + file_name(entry)

    def part_path(self, model_id):
        return "%s/%d.part" % (self.dir, model_id)

    def find(self, model_id):
        return self._find_in(self.models, model_id)

    def has_room(self, model_id):
        """True when `model_id` may be installed: it replaces an installed version, or
        the library holds fewer than `max_models` (and is not read-only)."""
        return not self.read_only and (len(self.models) < self.max_models or self.find(model_id) is not None)

    def check_room(self, model_id):
        """Raise unless `model_id` may be installed (see `has_room`).

        Raises:
            LibraryError: read-only this start.  TooManyModels: the library is full.
        """
        if self.read_only:
            raise LibraryError(self.read_only)
        if not self.has_room(model_id):
            raise TooManyModels("library full: %d models (the most this pedal keeps); delete some on the page"
                                % self.max_models)

    def has_part(self, model_id):
        """True when a .part of `model_id` is on flash."""
        return _exists(self.part_path(model_id))

    def installed_version(self, model_id):
        """The installed copy's `updated_at` ("" when it has none recorded), or None when
        the model is not installed (what tonecore.syncpolicy compares)."""
        entry = self.find(model_id)
        return None if entry is None else (entry[UPDATED] or "")

    def free_bytes(self):
        st = os.statvfs(self.root or "/")
        return st[0] * st[4]

    def room(self):
        """Bytes a model arriving may still take: the free space less SPARE_BLOCKS."""
        st = os.statvfs(self.root or "/")
        return st[0] * (st[4] - SPARE_BLOCKS)

    def used_bytes(self):
        return sum(entry[BYTES] for entry in self.models)

    def recover(self):
        """At boot: drop entries whose file is gone, then temporaries and files no entry
        owns; keep .parts (and everything while `read_only`: their owners are unknown).

        Returns:
            how many files were removed.
        Raises:
            OSError: the flash failed.  MemoryError: what was done stays done.
        """
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        _remove(self.path + ".tmp")
        if self.read_only:
            return 0
        kept = [entry for entry in self.models if _exists(self.file_path(entry))]
        if len(kept) != len(self.models):
            gone = len(self.models) - len(kept)
            self._commit(kept, self.active if self._find_in(kept, self.active) else None)
            self.note = "%d models in the model list had no file on flash; they were dropped" % gone
        removed = 0
        while True:  # a few names at a time: the folder may hold thousands of files
            batch = self._names(self._leftover, 16)
            count = 0
            for name in batch:
                if _remove(self.dir + "/" + name):
                    count += 1
            removed += count
            if len(batch) < 16 or not count:
                return removed

    def _names(self, wanted, most):
        """Up to `most` names in the models folder for which `wanted(name)` is true
        (os.ilistdir: the folder is never listed whole)."""
        found = []
        for item in os.ilistdir(self.dir):
            if item[1] == 0x8000 and wanted(item[0]):  # files only
                found.append(item[0])
                if len(found) >= most:
                    break
        return found

    def _leftover(self, name):
        """True for a file in models/ that nothing needs: no entry owns it, it is no .part,
        or it is a sidecar whose .part is gone."""
        if name.endswith(".part"):
            return False
        if name.endswith(".part.json"):
            return not _exists(self.dir + "/" + name[:-5])
        dash = name.find("-")
        try:
            entry = self.find(int(name[:dash])) if dash > 0 else None
        except ValueError:
            entry = None
        return entry is None or file_name(entry) != name

    # -- models arriving -------------------------------------------------------------

    def open_part(self, model_id, identity, checks, buf, total=None, flush_every=SYNC_EVERY):
        """Open the .part of a model arriving (a Wi-Fi download or a USB push).

        Args:
            identity: the sidecar of this transfer ({key: value}, see the layout).  A
                .part whose sidecar has these values is resumed: `checks.resume` (the
                core) decides and is fed the bytes already there, read through `buf`.
                Otherwise the .part starts empty with `identity` as its sidecar.
            checks: the DownloadPlan of a download (the part learns the length and
                ETag from it at its first write) or the Verifier of a push.
            total: the length, when known up front (a push): space is reserved now.
            flush_every: sync to flash after this many bytes (0: the caller flushes).
        Returns:
            a PartFile, writing on after its `size` bytes.
        Raises:
            TooLarge, LibraryFull: `total` does not fit (nothing of the .part is left).
            TooManyModels: the library is full (nothing is touched).
            LibraryError: the library is read-only this start.
        """
        self.check_room(model_id)
        path = self.part_path(model_id)
        part = PartFile(self, model_id, path, identity, checks, flush_every)
        on_flash = _size(path)
        if on_flash:
            part.file = open(path, "r+b")
            try:
                part.size = checks.resume(read_json(path + ".json", None), identity, on_flash,
                                          part.file.readinto, buf, total)
            except BaseException:
                part.close()
                raise
        if part.size:
            part.file.seek(part.size)
        else:
            part.truncate()
        if total is not None:
            part.reserve(total)
        if not part.size:
            write_json(path + ".json", identity)  # once it fits: a refused push leaves nothing
        return part

    def part_offset(self, model_id, identity, total=None):
        """Bytes of `model_id`'s .part that would be resumed for `identity` (0: none)."""
        path = self.part_path(model_id)
        return resume_offset(read_json(path + ".json", None), identity, _size(path), total)

    def _install(self, part, info, sha):
        """Make a verified, closed .part an installed model and record it (PartFile.install).

        Args:
            info: dict with tone_id, name, platform, size (the size class), updated_at,
                filename.
            sha: the SHA-256 hex the checks returned.
        """
        model_id = part.model_id
        tone_id = info.get("tone_id")
        entry = (model_id, tone_id if type(tone_id) is int else None, _text(info.get("name"), NAME_MAX),
                 _shared(info.get("platform")), _shared(info.get("size")), part.size, _unhex(sha),
                 _text(info.get("updated_at"), TEXT_MAX), _shared(extension(info.get("filename")) or ".bin"))
        name = file_name(entry)
        os.rename(part.path, self.dir + "/" + name)
        old = self.find(model_id)
        self._commit([e for e in self.models if e[ID] != model_id] + [entry],
                     model_id if self.active is None else self.active)
        _remove(part.path + ".json")
        if old is not None and file_name(old) != name:
            _remove(self.dir + "/" + file_name(old))
        return entry

    def prune_parts(self, keep):
        """Delete unfinished downloads of models not in `keep` (ids); returns how many.
        Unfinished USB pushes stay: only the host that started one can finish it."""
        count = 0
        skip = []  # .parts that stay (a few at most: a sync keeps only what it resumes)
        while True:
            batch = self._names(lambda name: name.endswith(".part") and name not in skip, 16)
            for name in batch:
                try:
                    model_id = int(name[:-5])
                except ValueError:
                    model_id = None
                meta = read_json(self.dir + "/" + name + ".json", None)
                meta = meta if isinstance(meta, dict) else {}
                if model_id not in keep and meta.get("source") != USB:  # a push resumes over USB
                    _remove(self.dir + "/" + name)
                    _remove(self.dir + "/" + name + ".json")
                    count += 1
                else:
                    skip.append(name)
            if len(batch) < 16:
                return count

    def discard(self, model_id):
        """Delete a model arriving for `model_id` (its .part and sidecar)."""
        part = self.part_path(model_id)
        _remove(part)
        _remove(part + ".json")

    # -- manage ----------------------------------------------------------------------

    def activate(self, model_id):
        if self.find(model_id) is None:
            raise NotInstalled("model %s is not installed" % model_id)
        self._commit(self.models, model_id)

    def delete(self, model_id):
        entry = self.find(model_id)
        if entry is None:
            raise NotInstalled("model %s is not installed" % model_id)
        models = [e for e in self.models if e[ID] != model_id]
        active = self.active
        if active == model_id:
            active = models[0][ID] if models else None
        self._commit(models, active)
        _remove(self.file_path(entry))


class PartFile:
    """A model arriving on flash, however it comes: the sink a download or a push writes
    into, and the one way into the library.  Made by `Library.open_part`.

        reserve(total)   once the length is known, before a byte is written: TooLarge
                         past the board's MAX_MODEL_BYTES; LibraryFull unless the rest
                         fits with SPARE_BLOCKS to spare (unfinished downloads of other
                         models give way first)
        write(chunk)     append; ENOSPC -> LibraryFull; a download with no announced
                         length that passes MAX_MODEL_BYTES -> TooLarge; synced every
                         `flush_every` bytes
        truncate()       empty it: the download starts over from byte 0
        install(info, sha)   after the core's checks passed: the .part becomes a model
        discard()        close and delete it (bad bytes are never resumed from)

    A refusal (TooLarge, LibraryFull) deletes the .part: nothing of it stays.

    Attributes:
        size: bytes in the .part.
    """

    def __init__(self, library, model_id, path, meta, checks, flush_every):
        self.library = library
        self.model_id = model_id
        self.path = path
        self.meta = meta  # the sidecar
        self.checks = checks
        self.flush_every = flush_every
        self.file = None
        self.size = 0
        self.reserved = False
        self._unflushed = 0

    def reserve(self, total):
        """Check that `total` bytes in all fit (None: unknown; found out while writing)."""
        self.reserved = True
        if total is None:
            return
        library = self.library
        if not fits(library.max_model_bytes, total):
            self.discard()
            raise TooLarge("model %d is %d KB; this board stores models up to %d KB"
                           % (self.model_id, total // 1024, library.max_model_bytes // 1024))
        need = total - self.size
        room = library.room()
        if need > room and library.prune_parts((self.model_id,)):
            room = library.room()  # other unfinished downloads gave way
        if need > room:
            self.discard()
            raise LibraryFull("not enough flash for model %d: it needs %d KB, %d KB are free for models "
                              "(%d KB more are kept for the library's own writes)"
                              % (self.model_id, need // 1024, max(room, 0) // 1024,
                                 (library.free_bytes() - room) // 1024))

    def _first_write(self):
        """A download's length and ETag are known once its response arrived."""
        plan = self.checks
        if self.meta.get("etag") != plan.etag:
            self.meta["etag"] = plan.etag  # sent back as If-Range when this resumes
            write_json(self.path + ".json", self.meta)
        self.reserve(plan.total)

    def write(self, chunk):
        if not self.reserved:
            self._first_write()
        try:
            self.file.write(chunk)
        except OSError as exc:
            if exc.args and exc.args[0] == ENOSPC:
                self.discard()
                raise LibraryFull("the flash filled up while writing model %d" % self.model_id)
            raise
        self.size += len(chunk)
        limit = self.library.max_model_bytes
        if not fits(limit, self.size):  # no length was announced (chunked): found out now
            self.discard()
            raise TooLarge("model %d is over %d KB; this board stores models up to %d KB"
                           % (self.model_id, limit // 1024, limit // 1024))
        if self.flush_every:
            self._unflushed += len(chunk)
            if self._unflushed >= self.flush_every:
                self.flush()

    def flush(self):
        """Make what was written durable (a power cut keeps it for a resume)."""
        self.file.flush()
        self._unflushed = 0

    def truncate(self):
        self.close()
        self.file = open(self.path, "w+b")
        self.size = 0
        self.reserved = False

    def close(self):
        if self.file is not None:
            try:
                self.file.flush()
            finally:
                self.file.close()
                self.file = None

    def discard(self):
        try:
            self.close()
        except OSError:
            pass
        self.library.discard(self.model_id)

    def install(self, info, sha):
        """Install the .part once the core's checks passed (`sha`: the hex they returned).

        Args:
            info: see Library._install.
        Returns:
            the new manifest entry.
        Raises:
            IntegrityError: the .part on flash is not as long as what was written and
                checked (it is deleted).
            TooManyModels, LibraryError: the library filled up meanwhile, or is
                read-only (the .part is deleted).
        """
        self.close()
        try:
            self.library.check_room(self.model_id)
        except LibraryError:
            self.discard()
            raise
        on_flash = _size(self.path)
        if on_flash != self.size:
            self.discard()
            raise IntegrityError("model %d has %s bytes on flash, not %d" % (self.model_id, on_flash, self.size))
        return self.library._install(self, info, sha)
