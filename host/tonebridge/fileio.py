"""Local files, written so that nothing is lost: atomic replacement, mode 0600, fsync.

Every file is written atomically: a temporary file in the same directory, created with
mode 0600 (never readable by others, not even for a moment), fsync, `os.replace`, and
an fsync of the directory.  A reader sees the old file or the new one, never half.

Used by the token store, downloads, the firmware build and the pedal sync's cache.
"""

import hashlib
import json
import os
import tempfile

READ_CHUNK = 1 << 20


def ensure_private_dir(path):
    """Create `path` (and parents) if needed and make it 0700 (best effort elsewhere)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError:  # pragma: no cover - a directory we may not own; the files stay 0600
        pass


def write_atomic(path, data):
    """Replace `path` with `data` (bytes) atomically; the file is mode 0600 from creation."""
    directory = os.path.dirname(os.path.abspath(path))
    # mkstemp opens with O_CREAT|O_EXCL and mode 0600: no window where others can read it.
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def fsync_dir(directory):
    """Make a rename in `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def read_json(path):
    """Parsed JSON of `path`, or None when it does not exist.

    Raises:
        ValueError: the file is not valid JSON.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return json.loads(data.decode("utf-8"))


def write_json(path, value):
    """Write `value` as stable JSON (sorted keys) atomically with mode 0600."""
    write_atomic(path, (json.dumps(value, sort_keys=True, indent=2) + "\n").encode("utf-8"))


def file_sha256(path):
    """SHA-256 of the file at `path`, lower-case hex (read in 1 MiB pieces)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
