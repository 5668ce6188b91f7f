"""Every board in boards/ gets the USB link settings the docs promise for its console.

The firmware's serial service takes its settings from
`tonecore.linkprofile.console_settings(boardinfo.SERIAL)`; here each board.py is run as
the pedal runs it (plain literals, no builtins) and its SERIAL goes through that same
function.  The table in docs/protocol.md §5 is the promise.  (tests/pedal/test_pedal_boot.py
boots the firmware with such boards and reads the settings it announces.)
"""

import os
import re

import pytest

from tonecore.errors import UsageError
from tonecore.linkprofile import KINDS, console_settings, profile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOARDS = os.path.join(ROOT, "boards")

# board -> its console kind, as boards/README.md and each board.py's comment describe it
CONSOLES = {
    "esp32_generic": "uart",  # a USB-UART bridge (CP210x, CH340)
    "esp32s3": "usb-cdc",  # native USB (TinyUSB CDC)
    "esp32c3": "usb-serial-jtag",  # the built-in USB Serial/JTAG
    "unix_sim": "pty",  # the simulator
}


def board_serial(name):
    """SERIAL of boards/<name>/board.py, run as the pedal imports it (as `boardinfo`)."""
    namespace = {"__builtins__": {}}
    with open(os.path.join(BOARDS, name, "board.py")) as f:
        exec(compile(f.read(), name, "exec"), namespace)  # noqa: S102 - our own board files
    return namespace["SERIAL"]


def promised():
    """docs/protocol.md §5: console kind -> (max frame, window, rx_buffer, flush every)."""
    with open(os.path.join(ROOT, "docs", "protocol.md")) as f:
        text = f.read()
    rows = {}
    for kinds, max_frame, window, rx_buffer, flush in re.findall(
            r"^\| (`[^|]*) \| (\d+) \| (\d+) \| (\d+) \| (\d+) KB \|", text, flags=re.M):
        for kind in re.findall(r"`([^`]+)`", kinds):
            rows[kind] = (int(max_frame), int(window), int(rx_buffer), int(flush) * 1024)
    return rows


def test_every_board_is_listed_here():
    found = sorted(name for name in os.listdir(BOARDS) if os.path.isfile(os.path.join(BOARDS, name, "board.py")))
    assert found == sorted(CONSOLES)


@pytest.mark.parametrize("board", sorted(CONSOLES))
def test_each_board_gets_the_link_profile_of_its_console(board):
    kind = board_serial(board)
    assert kind == CONSOLES[board]
    max_frame, window, rx_buffer, read_size, flush_every = console_settings(kind)
    assert (max_frame, window, rx_buffer, flush_every) == promised()[kind]
    if kind == "uart":  # the REPL's 260-byte ring: credit keeps the host under it
        assert rx_buffer == 240 and window == 4096
    else:  # native USB and the pty hold the host back themselves
        assert rx_buffer == 0
    if kind in ("usb-cdc", "usb-serial-jtag"):
        assert window == 16384 and max_frame == 4112
    # a board's stdin blocks until its buffer is full: read a byte at a time; the pty in bulk
    assert read_size == (4096 if kind == "pty" else 1)


def test_the_docs_cover_exactly_the_kinds_there_are():
    assert sorted(promised()) == sorted(KINDS)


def test_the_simulator_behind_a_uart_model_announces_the_uart_settings_but_reads_in_bulk():
    assert console_settings("pty", "uart") == (1040, 4096, 240, 1040, 16 * 1024)


@pytest.mark.parametrize("kind", ["usb", "UART", "", None])
def test_an_unknown_console_kind_is_refused(kind):
    with pytest.raises(UsageError) as refused:
        console_settings(kind)
    assert "unknown serial console kind" in str(refused.value) and "usb-cdc" in str(refused.value)
    with pytest.raises(UsageError):
        console_settings("pty", kind or "usb")
    with pytest.raises(UsageError):
        profile(kind)
