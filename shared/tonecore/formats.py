"""Model file formats: what a file name says a file is, what a board can hold, and
streaming structure checks fed the same chunks as the hash.

The API publishes no checksum, so besides length we check that the bytes are the kind
of file they claim to be, and have the structure a loader of that kind needs:

    .nam            NAM: one JSON object with "version" (string), "architecture"
                    (string), "config" (object) and "weights" (array)
    .aidax, .json   AIDA-X or Proteus: "model_data" and "state_dict" (objects; the
                    PyTorch export), or "layers" (array; the RTNeural export);
                    aa-snapshot (.json only): "blocks" (array)
    .wav            impulse response: RIFF/WAVE whose RIFF size is the file's length,
                    a "fmt " chunk before the "data" chunk: PCM 16/24/32-bit or float
                    32-bit (WAVE_FORMAT_EXTENSIBLE of either too), 1 or 2 channels,
                    44100, 48000, 88200 or 96000 Hz

Any other extension is refused, and so is a platform that is not one of
tonecore.records.PLATFORMS or not one the extension holds.  Keys count only at the top
level of the object (NAM's "config" has "layers" too), and the document must be exactly
one JSON object with nothing but whitespace after it.

Memory does not grow with the file: tonecore.jsonscan scans a JSON model (jumping from
one interesting byte to the next with bytes.find), tonecore.wavscan walks a WAV file's
chunk headers.  Each is imported only when a file of its kind arrives (the USB link's
checks of a PUT's file name need neither).

`EXTENSIONS` is the one table of file extensions: the check a file gets (here), the
platform a pushed file is taken for (`tonebridge pedal push`), and the extension an
installed model keeps on the pedal's flash.
"""

from .errors import IntegrityError

MAX_EXTENSION = 8  # ".aidax" and friends; anything longer is not a plain extension

# extension -> (the platforms a file of that kind may be, the first the default; how its
# bytes are checked)
EXTENSIONS = {
    ".nam": (("nam",), "json"),
    ".aidax": (("aida-x",), "json"),
    ".json": (("aida-x", "proteus", "aa-snapshot"), "json"),
    ".wav": (("ir",), "wav"),
}

# a JSON value's type, by its first byte (any other: a number)
_TYPES = {0x7B: "an object", 0x5B: "an array", 0x22: "a string", 0x74: "true", 0x66: "false", 0x6E: "null"}
_RNN = ((("model_data", 0x7B), ("state_dict", 0x7B)), (("layers", 0x5B),))
# platform (every one of tonecore.records.PLATFORMS) -> (what a file of it is called,
# alternatives: each the top-level keys it must have and the first byte of their values)
STRUCTURES = {
    "nam": ("a NAM model", ((("version", 0x22), ("architecture", 0x22), ("config", 0x7B), ("weights", 0x5B)),)),
    "aida-x": ("an AIDA-X model", _RNN),
    "proteus": ("a Proteus model", _RNN),
    "aa-snapshot": ("an aa-snapshot", ((("blocks", 0x5B),),)),
    "ir": ("an impulse response", ()),
}


class FormatError(IntegrityError):
    """The bytes are not a complete file of the kind their name says (bad JSON, not RIFF,
    missing structure), or the name is of no kind we know."""


def extension(filename):
    """The plain extension of a file name, lower case with its dot (".nam"), or "" when
    it has none: letters only, at most MAX_EXTENSION long, not a leading dot."""
    name = filename or ""
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    return ext if 1 < len(ext) <= MAX_EXTENSION and ext[1:].isalpha() else ""


def kind_of(filename):
    """'json', 'wav' or None (an extension we do not know) for a file name."""
    known = EXTENSIONS.get(extension(filename))
    return known[1] if known else None


def platform_of(filename):
    """The platform ("nam", "ir", "aida-x") a file name says by default, or None."""
    known = EXTENSIONS.get(extension(filename))
    return known[0][0] if known else None


def check_kind(filename, platform=None):
    """The platforms a file may be: `platform` when given, else every one its extension
    holds.

    Raises:
        FormatError: an extension we do not know, a platform not in
            tonecore.records.PLATFORMS, or one the extension cannot hold (a .wav is only
            an "ir", a .nam only a "nam").
    """
    known = EXTENSIONS.get(extension(filename))
    if known is None:
        raise FormatError("%s is not a model file tonebridge knows (%s)" % (filename, ", ".join(sorted(EXTENSIONS))))
    if platform is None:
        return known[0]
    if platform not in STRUCTURES:
        raise FormatError("%s: %r is not a platform tonebridge knows (%s)" % (
            filename, platform, ", ".join(sorted(STRUCTURES))))
    if platform not in known[0]:
        raise FormatError("%s: a %s file is %s, not %s" % (
            filename, extension(filename), _either(known[0]), STRUCTURES[platform][0]))
    return (platform,)


class FormatCheck:
    """Checks a file's kind and structure as its bytes stream past (see the module
    docstring); `verify(total)` at the end raises FormatError for the first problem.

    Args:
        filename: the file's name; its extension says what it must be.
        platform: the platform it is for (tonecore.records.PLATFORMS), or None: any its
            extension holds.
    """

    def __init__(self, filename, platform=None):
        self.filename = filename
        self.platform = platform
        self.reset()

    def reset(self):
        """Forget every byte fed."""
        self.error = self.scan = None
        try:
            self.platforms = check_kind(self.filename, self.platform)
        except FormatError as exc:
            self.platforms = ()
            self.error = exc.message
            return
        self.wav = kind_of(self.filename) == "wav"
        if self.wav:  # (each scanner is imported when a file of its kind arrives, not before)
            from .wavscan import WavScan

            self.scan = WavScan()
        else:
            from .jsonscan import JsonScan

            self.scan = JsonScan([key.encode() for platform in self.platforms
                                  for alternative in STRUCTURES[platform][1] for key, _ in alternative])

    def feed(self, data):
        scan = self.scan
        if scan is not None and scan.error is None:
            scan.feed(data)

    def verify(self, total):
        """Raise FormatError unless the file is complete, of its kind, with its structure."""
        if self.error is not None:
            raise FormatError(self.error)
        if total == 0:
            raise FormatError("%s is empty" % self.filename)
        if self.wav:
            problem = self.scan.problem(total)
        else:
            problem = self.scan.problem() or self._missing()
        if problem is not None:
            raise FormatError("%s is not %s: %s" % (self.filename, _either(self.platforms), problem))

    def _missing(self):
        """What the JSON file lacks of the structure of every platform it may be (the
        first alternative's first problem), or None when it has one's."""
        first = None
        for platform in self.platforms:
            for alternative in STRUCTURES[platform][1]:
                problem = None
                for key, kind in alternative:
                    found = self.scan.found.get(key.encode())
                    if found != kind and problem is None:
                        problem = 'no "%s"' % key if found is None else '"%s" is %s, not %s' % (
                            key, _TYPES.get(found, "a number"), _TYPES[kind])
                if problem is None:
                    return None
                first = first or problem
        return first


def _either(platforms):
    """'a NAM model', 'an AIDA-X model, a Proteus model or an aa-snapshot'."""
    names = [STRUCTURES[p][0] for p in platforms] or ["a model file"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def runnable(formats, platform, size):
    """True when a board with `formats` ({platform: sizes or '*'}) can run a model of
    that platform and size class (the pedal's Wi-Fi sync and the host's `pedal sync`)."""
    sizes = formats.get(platform)
    if sizes is None:
        return False
    return sizes == "*" or size in sizes


def fits(max_model_bytes, size):
    """True when a file of `size` bytes is within a board's MAX_MODEL_BYTES (None or 0:
    no limit)."""
    return not max_model_bytes or size <= max_model_bytes
