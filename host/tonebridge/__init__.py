"""tonebridge host side: the CLI, the httpx adapter, the board tooling, the development stand-ins.

The version is the core's (`tonecore.__version__`): one string for the host, the
pedal firmware and the package (pyproject.toml reads it from there too).
"""

from tonecore import __version__  # noqa: F401 - the package's version
