"""Running the emulator: both origins (API and storage) on one event loop.

    with EmulatorServer(rate_limit=5) as emu:      # background thread, free ports
        httpx.get(emu.base_url + "/api/v1/user")

    EmulatorServer(config).run_forever()           # foreground, until SIGINT/SIGTERM

Sockets are bound before anything runs, so `base_url` and `storage_url` carry the real
ports from the start.  uvicorn's access log is off and its signal handling replaced by
ours; uvicorn errors go to stderr through logging.
"""

import asyncio
import contextlib
import dataclasses
import signal
import socket
import threading

import uvicorn

from .app import create_app, create_storage_app
from .config import EmulatorConfig
from .state import EmulatorState

START_TIMEOUT_S = 15.0
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers (several servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def bind(host, port):
    """A listening TCP socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


def origin_of(sock, host, scheme="http"):
    """'http://host:port' for a bound socket (wildcard hosts shown as loopback)."""
    shown = WILDCARDS.get(host, host)
    if ":" in shown:
        shown = "[%s]" % shown
    return "%s://%s:%d" % (scheme, shown, sock.getsockname()[1])


class EmulatorServer:
    """The emulator's API and storage origins, in the background or the foreground.

    Args:
        config: an EmulatorConfig (used as is, so changes to `.config` take effect).
        overrides: EmulatorConfig fields to change (on a copy of `config`).
    Attributes:
        base_url: the API origin, e.g. "http://127.0.0.1:54321" (no trailing slash).
        storage_url: the storage origin for presigned downloads.
        config: the live EmulatorConfig.  state: the EmulatorState.
        tls: (certfile, keyfile) to serve both origins over https; `tls_host` is then the
            name in the URLs (the one the certificate is for, e.g. "localhost").
    """

    def __init__(self, config=None, tls=None, tls_host=None, **overrides):
        config = config or EmulatorConfig()
        if overrides:
            config = dataclasses.replace(config, cut_queue=list(config.cut_queue), **overrides)
        self.config = config
        self.tls = tls
        self._sockets = [bind(config.host, config.port), bind(config.host, config.storage_port)]
        scheme, shown = ("https", tls_host or config.host) if tls else ("http", config.host)
        self.base_url = origin_of(self._sockets[0], shown, scheme)
        self.storage_url = origin_of(self._sockets[1], shown, scheme)
        wildcard = config.host in WILDCARDS
        self.state = EmulatorState(config, None if wildcard else self.base_url, self.storage_url)
        self.apps = [create_app(state=self.state), create_storage_app(self.state)]
        self._servers = []
        self._loop = None
        self._thread = None

    # -- foreground / background ------------------------------------------------------

    async def serve(self, ready=None):
        """Serve both origins until stop() (or a signal in run_forever)."""
        self._loop = asyncio.get_running_loop()
        self._servers = [_Uvicorn(self._uvicorn_config(app, self.tls)) for app in self.apps]
        tasks = [asyncio.ensure_future(server.serve(sockets=[sock]))
                 for server, sock in zip(self._servers, self._sockets)]
        while not all(s.started for s in self._servers) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.005)
        if ready is not None:
            ready()
        try:
            await asyncio.gather(*tasks)
        finally:
            for sock in self._sockets:
                sock.close()

    def run_forever(self):
        """Serve in this (main) thread until SIGINT or SIGTERM; returns normally."""

        async def main():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._request_exit)
            await self.serve()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())

    def start(self):
        """Serve on a background thread; returns once both origins accept requests."""
        ready = threading.Event()
        failure = []

        def run():
            try:
                asyncio.run(self.serve(ready.set))
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="tonebridge-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S) or failure or not self._thread.is_alive():
            self.stop()
            raise RuntimeError("the emulator did not start: %r" % (failure[0] if failure else "timeout"))
        return self

    def stop(self):
        """Stop serving (idempotent); waits for the background thread."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._request_exit)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for sock in self._sockets:
            sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- internals --------------------------------------------------------------------

    def _request_exit(self):
        for server in self._servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

    @staticmethod
    def _uvicorn_config(app, tls=None):
        certfile, keyfile = tls or (None, None)
        return uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, log_level="warning",
                              http="h11", ws="none", proxy_headers=False, server_header=False,
                              timeout_graceful_shutdown=2, ssl_certfile=certfile, ssl_keyfile=keyfile)
