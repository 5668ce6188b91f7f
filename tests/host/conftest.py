"""Fixtures shared by the host tests."""

import os
import tty

import pytest

from tonebridge.sim import stage_firmware


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    """The pedal firmware staged (compiled to .mpy) once for the whole run; every
    SimulatedPedal given `lib=` runs this build."""
    folder = str(tmp_path_factory.mktemp("lib"))
    stage_firmware("unix_sim", folder)
    return folder


@pytest.fixture
def pty_port():
    """(master fd, slave path) of a raw pty: the test plays the pedal on the master; the
    path is the serial port a host opens."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    os.close(slave)
    yield master, path
    os.close(master)
