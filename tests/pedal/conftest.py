import pytest

from tonebridge.dev.emulator.server import EmulatorServer


@pytest.fixture(scope="module")
def emulator():
    """The emulator, one per test module (a module that configures its own overrides this)."""
    with EmulatorServer() as server:
        yield server
