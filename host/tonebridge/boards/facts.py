"""A board's facts: boards/<board>/board.py, read and checked by the one loader.

    boards/<board>/board.py      the facts (plain literals); on the pedal, the module `boardinfo`

`load_board(name)` is how every part of the host reads a board: the firmware build and
deploy, the simulated pedal, USB port detection and `tonebridge pedal sync`.  It runs
the file with no builtins (the same text must load on MicroPython) and checks every
field (boards/README.md describes them) against the core's own lists: the model
platforms and size classes of `tonecore.records`, the serial console kinds that
`tonecore.linkprofile` has link settings for.  A board no profile covers is refused
here, before anything is built for it.
"""

import os

from tonecore.errors import UsageError
from tonecore.formats import runnable
from tonecore.linkprofile import KINDS
from tonecore.records import ARCHITECTURES, PLATFORMS, SIZES

from tonebridge import paths
from tonebridge.boards import FirmwareError

ARCHES = ("xtensawin", "rv32imc")  # mpy-cross -march of the ESP32 family; None = bytecode only

# The chips a board's ESPTOOL_CHIP may name (esptool's --chip): the chip's name for people
# and the chip id a firmware image for it carries in its header (esptool's IMAGE_CHIP_ID),
# which `tonebridge firmware flash` checks before it writes anything.
CHIPS = {
    "esp32": ("ESP32", 0),
    "esp32s3": ("ESP32-S3", 9),
    "esp32c3": ("ESP32-C3", 5),
}


def _is_count(value):
    return type(value) is int and value >= 0


def _is_text(value):
    return type(value) is str and value != ""


def _is_usb_ids(value):
    return type(value) is tuple and all(
        type(entry) is tuple and len(entry) == 3 and _is_count(entry[0]) and _is_count(entry[1])
        and _is_text(entry[2])
        for entry in value
    )


def _is_pins(value):
    return type(value) is dict and all(_is_text(key) and _is_count(pin) for key, pin in value.items())


def _is_formats(value):
    if type(value) is not dict:
        return False
    for platform, sizes in value.items():
        if platform not in PLATFORMS:
            return False
        if sizes != "*" and not (type(sizes) is tuple and sizes and all(size in SIZES for size in sizes)):
            return False
    return True


def _is_ca_files(value):
    return type(value) is tuple and all(_is_text(name) and name.endswith(".der") for name in value)


# Every field of a board.py: (what makes its value valid, what a valid value is, for the error).
FIELDS = {
    "NAME": (_is_text, "the folder's name"),
    "TITLE": (_is_text, "a non-empty string"),
    "MCU": (_is_text, "a non-empty string"),
    "ARCH": (lambda value: value is None or value in ARCHES, "None or one of: " + ", ".join(ARCHES)),
    "ESPTOOL_CHIP": (lambda value: value is None or value in CHIPS, "None or one of: " + ", ".join(CHIPS)),
    "FLASH_OFFSET": (lambda value: value is None or (_is_count(value) and value % 0x1000 == 0),
                     "None or a byte offset, a multiple of 0x1000"),
    "MICROPYTHON_IMAGE": (lambda value: value is None or _is_text(value), "None or a non-empty string"),
    "FLASH_BYTES": (_is_count, "a byte count"),
    "FS_BYTES": (_is_count, "a byte count"),
    "BLOCK_SIZE": (lambda value: value == 4096, "4096"),
    "FS_ROOT": (lambda value: _is_text(value) and value.startswith("/"), "an absolute path"),
    "HEAP_BUDGET": (_is_count, "a byte count"),
    "PSRAM_BYTES": (_is_count, "a byte count"),
    "SERIAL": (lambda value: value in KINDS,
               "a kind tonecore.linkprofile has link settings for: " + ", ".join(KINDS)),
    "USB_IDS": (_is_usb_ids, "a tuple of (vid, pid, label)"),
    "PINS": (_is_pins, "a dict of name -> GPIO number"),
    "FORMATS": (_is_formats, "a dict of platform (%s) -> a tuple of size classes (%s) or \"*\""
                % (", ".join(PLATFORMS), ", ".join(SIZES))),
    "NAM_ARCHITECTURES": (lambda value: type(value) is tuple and value and all(a in ARCHITECTURES for a in value),
                          "a tuple of NAM architecture versions (%s)" % ", ".join(ARCHITECTURES)),
    "MAX_MODEL_BYTES": (_is_count, "a byte count"),
    "MAX_MODELS": (lambda value: _is_count(value) and value > 0, "a count of models, at least 1"),
    "CA_FILES": (_is_ca_files, "a tuple of .der file names"),
}


class Board:
    """One board's facts (`facts`: the board.py names, upper case) and its folder.

    `board.arch`, `board.fs_bytes`, … read the board.py names in lower case.
    """

    def __init__(self, name, directory, facts):
        self.name = name
        self.directory = directory
        self.facts = facts

    def __getattr__(self, field):
        try:
            return self.__dict__["facts"][field.upper()]
        except KeyError:
            raise AttributeError(field) from None

    @property
    def simulated(self):
        """True for the simulated pedal (the unix port on a pty): it boots with
        `micropython -m simboard.boot`, not from a main.py on flash."""
        return self.facts["SERIAL"] == "pty"

    def can_run(self, platform, size):
        """Whether the board runs a model of `platform` (e.g. "nam") and size class `size`."""
        return runnable(self.facts["FORMATS"], platform, size)

    def to_json(self):
        """The facts as a JSON-ready dict with lower-case keys."""
        facts = self.facts
        return {
            "name": self.name,
            "title": facts["TITLE"],
            "mcu": facts["MCU"],
            "arch": facts["ARCH"],
            "esptool_chip": facts["ESPTOOL_CHIP"],
            "flash_offset": facts["FLASH_OFFSET"],
            "micropython_image": facts["MICROPYTHON_IMAGE"],
            "flash_bytes": facts["FLASH_BYTES"],
            "fs_bytes": facts["FS_BYTES"],
            "block_size": facts["BLOCK_SIZE"],
            "fs_root": facts["FS_ROOT"],
            "heap_budget": facts["HEAP_BUDGET"],
            "psram_bytes": facts["PSRAM_BYTES"],
            "serial": facts["SERIAL"],
            "usb_ids": [{"vid": vid, "pid": pid, "label": label} for vid, pid, label in facts["USB_IDS"]],
            "pins": dict(facts["PINS"]),
            "formats": {k: v if v == "*" else list(v) for k, v in facts["FORMATS"].items()},
            "max_model_bytes": facts["MAX_MODEL_BYTES"],
            "max_models": facts["MAX_MODELS"],
            "nam_architectures": list(facts["NAM_ARCHITECTURES"]),
            "ca_files": list(facts["CA_FILES"]),
        }


def boards_dir_of(root=None):
    """The boards/ folder of the source tree `root` (default: tonebridge.paths.ROOT)."""
    return os.path.join(root or paths.ROOT, "boards")


def board_names(boards_dir=None):
    """The names of the boards in `boards_dir` (default: boards/; folders with a board.py), sorted."""
    boards_dir = boards_dir or boards_dir_of()
    try:
        entries = os.listdir(boards_dir)
    except OSError:
        return []
    return sorted(name for name in entries if os.path.isfile(os.path.join(boards_dir, name, "board.py")))


def load_board(name, boards_dir=None):
    """Read and check boards/<name>/board.py.

    The file runs with no builtins, so it can hold literals and arithmetic only: the same
    text must load on MicroPython as the module `boardinfo`.

    Raises:
        UsageError: no such board.
        FirmwareError: the board.py is broken (a missing or invalid field).
    """
    boards_dir = boards_dir or boards_dir_of()
    known = board_names(boards_dir)
    if name not in known:
        raise UsageError("unknown board %r; the boards are: %s" % (name, ", ".join(known) or "(none)"))
    directory = os.path.join(boards_dir, name)
    path = os.path.join(directory, "board.py")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    namespace = {"__builtins__": {}}
    try:
        exec(compile(text, path, "exec"), namespace)  # noqa: S102 - our own board files
    except Exception as error:  # noqa: BLE001 - any error in the file is the file's fault
        raise FirmwareError("%s: %s: %s" % (path, type(error).__name__, error)) from None
    facts = {}
    for field, (valid, expected) in FIELDS.items():
        if field not in namespace:
            raise FirmwareError("%s: %s is missing" % (path, field))
        if not valid(namespace[field]):
            raise FirmwareError("%s: %s has an invalid value: %r (expected %s)"
                                % (path, field, namespace[field], expected))
        facts[field] = namespace[field]
    if facts["NAME"] != name:
        raise FirmwareError("%s: NAME is %r, not the folder's name %r" % (path, facts["NAME"], name))
    if (facts["ESPTOOL_CHIP"] is None) != (facts["FLASH_OFFSET"] is None):
        raise FirmwareError("%s: ESPTOOL_CHIP and FLASH_OFFSET go together (both None: nothing to flash)" % path)
    if facts["FLASH_OFFSET"] is not None and facts["FLASH_OFFSET"] >= facts["FLASH_BYTES"]:
        raise FirmwareError("%s: FLASH_OFFSET 0x%x is past the end of the flash (FLASH_BYTES)"
                            % (path, facts["FLASH_OFFSET"]))
    return Board(name, directory, facts)
