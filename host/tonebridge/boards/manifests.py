"""MicroPython manifest.py files, read on the host: which files make up the firmware.

The firmware's files are declared once, per package, in MicroPython's own convention
(docs/reference/manifest.rst, as micropython-lib does): shared/manifest.py (tonecore),
firmware/manifest.py (pedal, microdot, boardinfo), and each board's
boards/<board>/manifest.py, which includes those (and, on unix_sim, the simboard
package).  MicroPython's make reads a board's manifest to freeze a custom image; this
module reads the same files so that `tonebridge firmware build` compiles exactly what
a freeze would freeze.

    read_manifest("boards/esp32s3/manifest.py", options={"stage": ...})
        -> [Frozen("pedal/main.py", "/…/firmware/pedal/main.py", "/…/firmware/manifest.py"), ...]

What a manifest can call, with the semantics of MicroPython's tools/manifestfile.py:

    include(path or paths, **options)    run another manifest; a folder means its
                                         manifest.py; each file runs once; the keywords
                                         become the included file's `options`
    package(name, files=None, base_path=".")
                                         every .py under base_path/name (or the listed
                                         files), named name/…
    module(file, base_path=".")          one .py file, named as given
    options                              options.x is the include's keyword, or the
                                         default set with options.defaults(x=…), or None
    metadata(**fields)                   accepted and ignored

Relative paths start at the folder of the manifest that names them, and $(VAR) is
replaced from `variables`.  An include of a path with a variable this reader was not
given (MicroPython's `$(PORT_DIR)`, `$(MPY_DIR)`) is skipped: those are the port's own
modules, which only its make can reach.  Unlike MicroPython, the current directory is
not changed while a manifest runs (it is a process-wide setting and the host has
threads), so a manifest must not look at files itself; ours do not.  `require`,
`add_library`, `c_module` and the legacy `freeze*` calls are not used by our manifests
and raise ManifestError.
"""

import collections
import os
import re

from tonebridge.boards import FirmwareError

Frozen = collections.namedtuple("Frozen", "target source manifest")
Frozen.__doc__ = """One file of the firmware: `target` its path as frozen ("pedal/main.py"), `source`
the file it comes from, `manifest` the manifest that listed it."""

_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class ManifestError(FirmwareError):
    """A manifest failed: it raised, named a missing file, or used an unsupported call."""


class Options:
    """The `options` of a manifest: the keywords of the include() that ran it."""

    def __init__(self, given):
        self._given = dict(given)
        self._defaults = {}

    def defaults(self, **defaults):
        """Values for the options an include did not give."""
        self._defaults = defaults

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._given.get(name, self._defaults.get(name))


class _Reader:
    """Runs manifests and collects the files they name (see the module docstring)."""

    def __init__(self, variables):
        self.variables = dict(variables or {})
        self.files = {}  # target -> Frozen; a later listing of the same target wins
        self._visited = set()
        self._running = []  # the manifests running, innermost last

    def _resolve(self, path):
        """`path` with its variables replaced, made absolute from the running manifest's
        folder; None when it names a variable this reader was not given."""
        missing = [name for name in _VARIABLE.findall(path) if name not in self.variables]
        if missing:
            return None
        path = _VARIABLE.sub(lambda match: self.variables[match.group(1)], path)
        return os.path.normpath(os.path.join(os.path.dirname(self._running[-1]), path))

    def _add(self, source, target):
        if not os.path.isfile(source):
            raise ManifestError("%s is missing" % source)
        target = target.replace(os.sep, "/")
        self.files[target] = Frozen(target, source, self._running[-1])

    def run(self, path, options):
        """Run the manifest `path` (absolute; a folder means its manifest.py) once."""
        if not path.endswith(".py") and not os.path.isfile(path):
            path = os.path.join(path, "manifest.py")
        if path in self._visited:
            return
        self._visited.add(path)
        api = {
            "include": self.include,
            "package": self.package,
            "module": self.module,
            "metadata": lambda **fields: None,
            "options": Options(options),
        }
        for name in UNSUPPORTED:
            api[name] = _unsupported(name)
        try:
            with open(path, encoding="utf-8") as f:
                code = compile(f.read(), path, "exec")
        except OSError as error:
            raise ManifestError("cannot read the manifest %s: %s" % (path, error.strerror or error)) from None
        self._running.append(path)
        try:
            exec(code, api)  # noqa: S102 - our own manifests
        except Exception as error:  # noqa: BLE001 - what the manifest raised is its message
            raise ManifestError("%s: %s" % (path, error)) from None
        finally:
            self._running.pop()

    def include(self, manifest_path, **options):
        """include(): one manifest, or each of an iterable of them, with `options`."""
        if not isinstance(manifest_path, str):
            for one in manifest_path:
                self.include(one, **options)
            return
        path = self._resolve(manifest_path)
        if path is not None:  # else one of MicroPython's own manifests: its make reads those
            self.run(path, options)

    def package(self, package_path, files=None, base_path=".", opt=None):
        """package(): every .py under base_path/package_path, or the `files` listed.

        Stricter than MicroPython, which freezes nothing for a missing package folder:
        a package with no modules is an error."""
        base = self._known_path(base_path)
        if files is not None:
            for name in files:
                target = os.path.join(package_path, name) if package_path else name
                self._add(os.path.join(base, target), target)
            return
        top = os.path.join(base, package_path)
        found = []
        for folder, _, names in os.walk(top, followlinks=True):
            found += [os.path.join(folder, name) for name in names if name.lower().endswith(".py")]
        if not found:
            raise ManifestError("package %r has no Python modules in %s" % (package_path, top))
        for source in sorted(found):
            self._add(source, os.path.relpath(source, base))

    def module(self, module_path, base_path=".", opt=None):
        """module(): the one .py file base_path/module_path, named module_path."""
        if not module_path.lower().endswith(".py"):
            raise ManifestError("module %s: a module must be a .py file" % module_path)
        self._add(os.path.join(self._known_path(base_path), module_path), module_path)

    def _known_path(self, path):
        resolved = self._resolve(path)
        if resolved is None:
            raise ManifestError("%s: only MicroPython's make knows %s"
                                % (path, ", ".join("$(%s)" % name for name in _VARIABLE.findall(path))))
        return resolved


UNSUPPORTED = ("require", "add_library", "c_module", "freeze", "freeze_as_str", "freeze_as_mpy", "freeze_mpy")


def _unsupported(name):
    def call(*args, **kwargs):
        raise ManifestError("%s() is not supported by tonebridge's manifest reader "
                            "(include, package, module, options and metadata are)" % name)
    return call


def read_manifest(path, variables=None, options=None):
    """The files the manifest at `path` (and what it includes) makes up, sorted by target.

    Args:
        path: a manifest.py, or a folder holding one.
        variables: $(NAME) -> path substitutions (MicroPython's make passes MPY_DIR,
            PORT_DIR, BOARD_DIR, MPY_LIB_DIR); includes through others are skipped.
        options: the top manifest's `options` (MicroPython gives it none).

    Returns:
        a list of Frozen(target, source, manifest).

    Raises:
        ManifestError: the manifest, or one it includes, failed (the message names the
            chain of manifests and what went wrong).
    """
    reader = _Reader(variables)
    reader.run(os.path.abspath(path), options or {})
    return [reader.files[target] for target in sorted(reader.files)]
