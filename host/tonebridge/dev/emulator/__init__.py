"""A faithful local emulator of the TONE3000 API v1 (a real ASGI server).

    config.py          EmulatorConfig: every switch (CLI flags, POST /_emulator/config)
    catalogue.py       the deterministic users, tones, models and favorites
    model_files.py     model files in real formats (.nam, AIDA-X, Proteus, .wav), lazily built
    credentials.py     api_keys, access and refresh tokens (rotation)
    signin.py          the sign-in pages (OTP code or magic link), pages.py their HTML
    app.py             the API and storage ASGI apps
    file_serving.py    serving model files: ranges, cuts, presigned storage URLs
    middleware.py      request log, latency, 503s and the rate limit (throttle.py)
    control.py         /_emulator/* test endpoints
    server.py          EmulatorServer: both origins on real sockets
    command.py         `tonebridge emulator`

    from tonebridge.dev.emulator import EmulatorServer
    with EmulatorServer(token_ttl=5) as emu:
        print(emu.base_url)
"""

from .app import create_app, create_storage_app
from .config import EmulatorConfig

__all__ = ["EmulatorConfig", "EmulatorServer", "create_app", "create_storage_app"]


def __getattr__(name):  # EmulatorServer imports uvicorn: load it on first use
    if name == "EmulatorServer":
        from .server import EmulatorServer

        return EmulatorServer
    raise AttributeError(name)
