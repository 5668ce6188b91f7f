"""Fixtures shared by every test folder; `tests/helpers` is importable from all of them."""

import os
import sys
import tty

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers"))

import pytest

from tonebridge.dev.simulator import stage_firmware


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
