"""tonebridge host side: the CLI, the httpx adapter, the TONE3000 emulator."""

__version__ = "0.1.0"
