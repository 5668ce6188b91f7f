"""The model library on the pedal's flash (littlefs), safe against power loss.

Layout under the flash root:

    library.json            the manifest: installed models and the active one
    session.json            the TONE3000 tokens (see tokens.py)
    models/<id>-<sha8>.<ext>   an installed model; the name changes with the content,
                            so a new version never overwrites the file the manifest
                            still points at
    models/<id>.part        a download in progress, synced to flash every SYNC_EVERY
    models/<id>.part.json   what that .part is (url, updated_at, etag) for resuming

Every JSON file is replaced atomically: written to `<name>.tmp`, synced, renamed over
the old one (littlefs renames atomically).  Install order: verify the .part (length,
SHA-256, format) -> rename it to its final name -> rewrite the manifest -> delete the
file of the version it replaced.  A crash at any point leaves the manifest pointing at
complete, verified files; `recover()` at boot deletes leftovers (temporaries and files
no manifest entry owns) and keeps .part files for resuming.
"""

import json
import os
from binascii import unhexlify

from tonecore.compat import hexlify
from tonecore.errors import ToneError

# A manifest entry in RAM is a tuple in this order (about half the heap of a dict), its
# sha256 as 32 bytes (hex on flash) and, instead of the file name, only its extension
# (the name is <id>-<sha8><ext>); on flash each is a JSON object with these keys.
FIELDS = ("id", "tone_id", "name", "platform", "size", "bytes", "sha256", "updated_at", "file")
ID, TONE, NAME, PLATFORM, SIZE, BYTES, SHA, UPDATED, EXT = range(9)

MANIFEST = "library.json"
MODELS = "models"
SPARE_BLOCKS = 16  # kept free beyond a download: manifest rewrites, littlefs metadata
SYNC_EVERY = 256 * 1024  # a .part is synced (made durable) after this many bytes
ENOSPC = 28


class LibraryError(ToneError):
    """The library cannot do that (unknown model, damaged manifest)."""

    link_code = 9  # tonecore.link.E_STORAGE


class NotInstalled(LibraryError):
    """No installed model has that id."""

    link_code = 5  # tonecore.link.E_NOT_FOUND


class LibraryFull(LibraryError):
    """Not enough flash for a model; nothing was installed."""

    link_code = 3  # tonecore.link.E_NO_SPACE


class TooLarge(LibraryError):
    """The model is larger than this board stores (its MAX_MODEL_BYTES); skipped."""

    link_code = 4  # tonecore.link.E_TOO_LARGE


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


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
        return unhexlify(text) if text else None
    except ValueError:
        return None


def file_name(entry):
    """The file of a manifest entry: <id>-<first 8 hex of its sha256><ext>."""
    sha = hexlify(entry[SHA])[:8] if entry[SHA] else "unknown"
    return "%d-%s%s" % (entry[ID], sha, entry[EXT])


def extension(filename):
    dot = filename.rfind(".")
    ext = filename[dot:].lower() if dot > 0 else ""
    return ext if 1 < len(ext) <= 8 and ext[1:].isalpha() else ".bin"


class Library:
    """Installed models on the flash mounted at `root` ('' or '/flash').

    Attributes:
        models: the manifest's entries, tuples in FIELDS order.
        active: the id of the active model, or None.
    """

    def __init__(self, root, max_model_bytes=None):
        self.root = root.rstrip("/")
        self.max_model_bytes = max_model_bytes
        self.dir = self.root + "/" + MODELS
        self.path = self.root + "/" + MANIFEST
        self.models = []
        self.active = None
        self.load()

    def load(self):
        data = read_json(self.path, None)
        if data is None and _exists(self.path):
            raise LibraryError("the model manifest on flash is damaged")
        data = data or {}
        active = data.get("active")
        models = data.get("models") or []
        data = None
        for at in range(len(models)):
            item = models[at]
            item["sha256"] = _unhex(item.get("sha256"))
            name = item.get("file") or ""
            item["file"] = name[name.rfind("."):] if "." in name else ""
            models[at] = tuple(item.get(key) for key in FIELDS)
            item = None
        self.models = models
        # an active id that is not installed is no pointer
        self.active = active if self.find(active) is not None else None

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
        for entry in self.models:
            if entry[ID] == model_id:
                return entry
        return None

    def needs(self, model_id, updated_at):
        """True when the model is missing or the service has a newer version."""
        entry = self.find(model_id)
        return entry is None or (updated_at or "") != (entry[UPDATED] or "")

    def free_bytes(self):
        st = os.statvfs(self.root or "/")
        return st[0] * st[4]

    def used_bytes(self):
        return sum(entry[BYTES] for entry in self.models)

    def recover(self):
        """At boot: drop temporaries and files no manifest entry owns; keep .parts.

        Returns:
            the names removed.
        """
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        _remove(self.path + ".tmp")
        owned = [file_name(entry) for entry in self.models]
        removed = []
        for name in os.listdir(self.dir):
            if name in owned or name.endswith(".part") or name.endswith(".part.json"):
                continue
            if _remove(self.dir + "/" + name):
                removed.append(name)
        for name in os.listdir(self.dir):  # a sidecar without its .part is useless
            if name.endswith(".part.json") and name[:-5] not in os.listdir(self.dir):
                _remove(self.dir + "/" + name)
        return removed

    # -- install -------------------------------------------------------------------

    def begin(self, model_id, url, updated_at):
        """Open the .part for `model_id` (resumed when it is for the same version).

        Returns:
            a PartFile; its `offset` bytes are already on flash.
        """
        part = self.part_path(model_id)
        meta = read_json(part + ".json", None)
        if meta is None or meta.get("updated_at") != updated_at or not _exists(part):
            _remove(part)
            meta = {"id": model_id, "updated_at": updated_at, "etag": None}
            write_json(part + ".json", meta)
            return PartFile(self, model_id, part, meta, resume=False)
        return PartFile(self, model_id, part, meta, resume=True)

    def install(self, part, info, sha):
        """Make a verified .part an installed model and record it in the manifest.

        Args:
            part: the closed PartFile.
            info: dict with tone_id, name, platform, size, updated_at, filename.
            sha: the SHA-256 hex the download verified.
        """
        model_id = part.model_id
        entry = (model_id, info.get("tone_id"), info.get("name"), info.get("platform"), info.get("size"),
                 part.size, _unhex(sha), info.get("updated_at"), extension(info.get("filename") or ""))
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
        for name in os.listdir(self.dir):
            if name.endswith(".part"):
                try:
                    model_id = int(name[:-5])
                except ValueError:
                    model_id = None
                meta = read_json(self.dir + "/" + name + ".json", None) or {}
                if model_id not in keep and meta.get("source") != "usb":  # a push resumes over USB
                    _remove(self.dir + "/" + name)
                    _remove(self.dir + "/" + name + ".json")
                    count += 1
        return count

    def discard(self, model_id):
        """Delete a download in progress for `model_id`."""
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
    """The sink a download writes into: a .part on flash.

    Checks free space when the size becomes known, syncs every SYNC_EVERY bytes (so a
    power cut loses at most that much), and turns ENOSPC into LibraryFull.
    """

    def __init__(self, library, model_id, path, meta, resume):
        self.library = library
        self.model_id = model_id
        self.path = path
        self.meta = meta
        self.file = open(path, "r+b" if resume else "w+b")
        self.size = self.file.seek(0, 2) if resume else 0
        self.plan = None
        self.checked = False
        self._unsynced = 0

    @property
    def offset(self):
        return self.size

    def attach(self, plan, buf):
        """Use `plan`; bytes already in the .part are fed to it (hash, format check)."""
        self.plan = plan
        if not self.size:
            return
        self.file.seek(0)
        left = self.size
        view = memoryview(buf)
        while left:
            count = self.file.readinto(view[: left if left < len(buf) else len(buf)])
            if not count:
                break
            plan.absorb_prefix(view[:count])
            left -= count
        self.size -= left  # a shorter file than stat said: trust what was read
        self.file.seek(self.size)
        plan.offset = plan.sink_size = self.size
        plan.etag = self.meta.get("etag")

    def _check_space(self):
        plan = self.plan
        self.checked = True
        if plan is None or plan.total is None:
            return
        if self.meta.get("etag") != plan.etag:
            self.meta["etag"] = plan.etag
            write_json(self.path + ".json", self.meta)
        limit = self.library.max_model_bytes
        if limit and plan.total > limit:
            raise TooLarge("model %d is %d KB; this board stores models up to %d KB"
                           % (self.model_id, plan.total // 1024, limit // 1024))
        need = plan.total - self.size
        block = os.statvfs(self.library.root or "/")[0]
        free = self.library.free_bytes() - SPARE_BLOCKS * block
        if need > free and self.library.prune_parts((self.model_id,)):
            free = self.library.free_bytes() - SPARE_BLOCKS * block  # other unfinished downloads gave way
        if need > free:
            raise LibraryFull("not enough flash for model %d: it needs %d KB, %d KB are free"
                              % (self.model_id, need // 1024, max(free, 0) // 1024))

    def write(self, chunk):
        if not self.checked:
            self._check_space()
        try:
            self.file.write(chunk)
        except OSError as exc:
            if exc.args and exc.args[0] == ENOSPC:
                raise LibraryFull("the flash filled up while writing model %d" % self.model_id)
            raise
        self.size += len(chunk)
        limit = self.library.max_model_bytes
        if limit and self.size > limit:  # no length was announced (chunked): found out now
            raise TooLarge("model %d is over %d KB; this board stores models up to %d KB"
                           % (self.model_id, limit // 1024, limit // 1024))
        self._unsynced += len(chunk)
        if self._unsynced >= SYNC_EVERY:
            self.file.flush()
            self._unsynced = 0

    def truncate(self):
        """The download starts over: empty the .part."""
        self.file.close()
        self.file = open(self.path, "w+b")
        self.size = 0
        self.checked = False

    def close(self):
        if self.file is not None:
            try:
                self.file.flush()
            finally:
                self.file.close()
                self.file = None
