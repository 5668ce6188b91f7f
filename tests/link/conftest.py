import pytest
from link_helpers import NO_API, pedal_env

from tonebridge.dev.simulator import SimulatedPedal


@pytest.fixture
def pedal(lib, tmp_path):
    """A simulated pedal with no API, on a fresh flash image, its console ready for a link."""
    sim = SimulatedPedal(NO_API, str(tmp_path / "flash.img"), lib=lib, env=pedal_env())
    with sim:
        sim.start()
        yield sim
