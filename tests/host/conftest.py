"""Fixtures shared by the host tests."""

import pytest

from tonebridge.sim import stage_firmware


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    """The pedal firmware staged (compiled to .mpy) once for the whole run; every
    SimulatedPedal given `lib=` runs this build."""
    folder = str(tmp_path_factory.mktemp("lib"))
    stage_firmware("unix_sim", folder)
    return folder
