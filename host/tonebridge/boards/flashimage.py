"""A pedal's flash image on the host: mount it with littlefs-python, read the library.

The geometry is the pedal's (firmware/simboard/flash.py): 4096-byte blocks, read and
prog size 32, lookahead 32; only the block size and count are stored on flash and must
match.  `library`, `problems` and `check_library` read an image into memory and never
write it; `make_image` writes a new one (e.g. with a config.json for the simulated
pedal's first boot).

littlefs-python is a development dependency (the tests and `make demo` read images),
so it is imported on first use: without it, a FirmwareError says how to get it.
"""

import hashlib
import json

from tonebridge.boards import FirmwareError

BLOCK = 4096


def _littlefs():
    """The littlefs-python module.

    Raises:
        FirmwareError: it is not installed.
    """
    try:
        import littlefs
    except ImportError:
        raise FirmwareError("reading a flash image needs littlefs-python: pip install littlefs-python "
                            "(`make install` installs it)") from None
    return littlefs


def mount(path):
    """The littlefs image at `path`, mounted (a copy in memory)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    fs = _littlefs().LittleFS(block_size=BLOCK, block_count=len(data) // BLOCK, read_size=32, prog_size=32,
                              lookahead_size=32, mount=False)
    fs.context.buffer = data
    fs.mount()
    return fs


def read(fs, path):
    """The bytes of `path` on a mounted image."""
    with fs.open(path, "rb") as f:
        return f.read()


def library(path):
    """(manifest dict, {file name: bytes}) of the model library on the image at `path`."""
    fs = mount(path)
    try:
        manifest = json.loads(read(fs, "library.json"))
    except FileNotFoundError:
        manifest = {"models": [], "active": None}
    files = {}
    try:
        names = fs.listdir("models")
    except FileNotFoundError:
        names = []
    for name in names:
        files[name] = read(fs, "models/" + name)
    return manifest, files


def problems(path):
    """What is wrong with the library on the image: entries whose file is missing, or
    whose length or SHA-256 differs from the manifest.  [] when every model verifies.

    Returns:
        (manifest, files, list of one-line problems).
    """
    manifest, files = library(path)
    found = []
    for entry in manifest["models"]:
        data = files.get(entry["file"])
        if data is None:
            found.append("model %s: %s is not on flash" % (entry["id"], entry["file"]))
        elif len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            found.append("model %s: %s is torn or altered" % (entry["id"], entry["file"]))
    return manifest, files, found


class ImageError(ValueError):
    """The library on a flash image does not verify."""


def check_library(path):
    """Verify every manifest entry's file on the image at `path` (length and SHA-256).

    Returns:
        (manifest, files), as `library`.
    Raises:
        ImageError: a model is missing, torn or altered (every problem in the message).
    """
    manifest, files, found = problems(path)
    if found:
        raise ImageError("flash image %s: %s" % (path, "; ".join(found)))
    return manifest, files


def make_image(path, files, block_count=4096):
    """Write a new, formatted image to `path` holding `files` ({path on flash: bytes})."""
    fs = _littlefs().LittleFS(block_size=BLOCK, block_count=block_count, read_size=32, prog_size=32,
                              lookahead_size=32)
    for name, data in files.items():
        folder = name.rsplit("/", 1)[0] if "/" in name else ""
        if folder:
            try:
                fs.makedirs(folder, exist_ok=True)
            except AttributeError:  # an older littlefs-python
                fs.mkdir(folder)
        with fs.open(name, "wb") as f:
            f.write(data)
    with open(path, "wb") as f:
        f.write(fs.context.buffer)
