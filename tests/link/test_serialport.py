"""Finding and opening the pedal's serial port: real ptys stand in for the USB device."""

import errno
import fcntl
import os
import struct
import subprocess
import sys
import termios

import pytest
import serial
import serial.tools.list_ports
from serial.tools.list_ports_common import ListPortInfo

from tonebridge import paths
from tonebridge.boards.facts import board_names, load_board
from tonebridge.link import ports as serialport
from tonecore.errors import UsageError


def usb_port(device, vid, pid, description="n/a"):
    info = ListPortInfo(device)
    info.vid, info.pid, info.description = vid, pid, description
    return info


@pytest.fixture
def attached(monkeypatch):
    """attached(*ports): what pyserial's comports() lists from now on."""

    def plug(*ports):
        monkeypatch.setattr(serial.tools.list_ports, "comports", lambda *args, **kw: list(ports))

    return plug


# -- opening ---------------------------------------------------------------------------


def test_a_pty_opens_although_it_refuses_the_modem_line_ioctls(pty_port):
    master, path = pty_port
    with open(path, "rb", buffering=0) as probe:  # a pty has no DTR/RTS to set ...
        with pytest.raises(OSError) as refused:
            fcntl.ioctl(probe.fileno(), termios.TIOCMBIS, struct.pack("I", termios.TIOCM_DTR))
        assert refused.value.errno == errno.ENOTTY
    port = serialport.open_port(path, baud=921600)  # ... and open() ignores that
    try:
        assert port.is_open and port.baudrate == 921600 and port.exclusive
        assert port.dtr and port.rts  # asked for both: the state that never resets an ESP32
        assert not (port.rtscts or port.dsrdtr or port.xonxoff)
    finally:
        port.close()  # releasing RTS then DTR is refused too, and ignored
    assert not port.is_open


def test_bytes_pass_both_ways_untouched(pty_port):
    master, path = pty_port
    every_byte = bytes(range(256))
    port = serialport.open_port(path)
    try:
        port.write(every_byte)
        received = b""
        while len(received) < 256:
            received += os.read(master, 256)
        assert received == every_byte
        os.write(master, every_byte[::-1])
        assert port.read(256) == every_byte[::-1]
    finally:
        port.close()


def test_a_port_open_elsewhere_is_busy(pty_port):
    master, path = pty_port
    first = serialport.open_port(path)
    try:
        with pytest.raises(UsageError) as caught:
            serialport.open_port(path)
        assert str(caught.value) == "serial port %s is busy (another program has it open)" % path
    finally:
        first.close()
    serialport.open_port(path).close()  # free again once closed


def test_a_missing_port_is_one_line_naming_it(tmp_path):
    with pytest.raises(UsageError) as caught:
        serialport.open_port(str(tmp_path / "ttyUSB9"))
    assert str(caught.value) == "no serial port %s" % (tmp_path / "ttyUSB9")


def test_a_file_that_is_not_a_tty_is_not_a_serial_port(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    with pytest.raises(UsageError, match="is not a serial port"):
        serialport.open_port(str(plain))


def test_no_permission_names_the_dialout_group(pty_port, monkeypatch):
    master, path = pty_port

    def refuse(self):
        raise serial.SerialException(errno.EACCES, "could not open port %s: [Errno 13] Permission denied" % path)

    monkeypatch.setattr(serial.Serial, "open", refuse)  # root (CI) may open anything
    with pytest.raises(UsageError) as caught:
        serialport.open_port(path)
    assert "no permission to open serial port %s" % path in str(caught.value)
    assert "dialout group" in str(caught.value)


def test_a_bad_baud_rate_is_a_usage_error(pty_port):
    with pytest.raises(UsageError, match="cannot use serial port"):
        serialport.open_port(pty_port[1], baud=-5)


# -- finding -------------------------------------------------------------------------------


def test_usb_ids_have_the_usual_bridges_and_every_boards_own():
    for vid, pid in ((0x10C4, 0xEA60), (0x1A86, 0x7523), (0x1A86, 0x55D3), (0x1A86, 0x55D4), (0x303A, 0x1001),
                     (0x303A, 0x4001)):
        assert serialport.describe_usb(vid, pid), (hex(vid), hex(pid))
    for name in board_names():
        for vid, pid, _ in load_board(name).usb_ids:
            assert serialport.describe_usb(vid, pid)
    assert serialport.describe_usb(0x0403, 0x6001) is None  # an FTDI cable: not one of ours
    assert serialport.describe_usb(None, None) is None  # a port that is not USB at all


def test_the_board_files_are_read_on_first_use_not_at_import():
    code = ("from tonebridge.link import ports\n"
            "print(ports.usb_ids.cache_info().misses)\n"
            "ports.describe_usb(0x303A, 0x1001)\n"
            "print(ports.usb_ids.cache_info().misses)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]


def test_a_broken_board_file_leaves_the_known_bridges(monkeypatch, tmp_path):
    (tmp_path / "boards" / "bad").mkdir(parents=True)
    (tmp_path / "boards" / "bad" / "board.py").write_text("NAME = 'bad'\nUSB_IDS = ((0x0403, 0x6001, 'FTDI'),)\n")
    monkeypatch.setattr(paths, "ROOT", str(tmp_path))
    serialport.usb_ids.cache_clear()
    try:
        assert serialport.describe_usb(0x10C4, 0xEA60) == "Silicon Labs CP210x"
        assert serialport.describe_usb(0x0403, 0x6001) is None  # the broken board's ids are not taken
    finally:
        serialport.usb_ids.cache_clear()


def test_a_path_passes_through_untouched(attached):
    attached()
    assert serialport.resolve_port("/dev/ttyS7") == "/dev/ttyS7"


def test_auto_with_no_pedal_says_what_it_looked_for(attached):
    attached(usb_port("/dev/ttyS0", None, None), usb_port("/dev/ttyUSB3", 0x0403, 0x6001, "FT232R"))
    with pytest.raises(UsageError) as caught:
        serialport.resolve_port("auto")
    assert str(caught.value) == ("no ESP32 pedal found on USB (looked for Espressif native USB, CP210x, "
                                 "CH340/CH343); pass --port PATH")


def test_auto_picks_the_one_pedal_including_espressif_with_any_product_id(attached):
    attached(usb_port("/dev/ttyS0", None, None), usb_port("/dev/ttyACM0", 0x303A, 0x4002, "ESP32-S3"))
    assert serialport.resolve_port("auto") == "/dev/ttyACM0"
    assert serialport.resolve_port(None) == "/dev/ttyACM0"
    assert serialport.find_ports() == [("/dev/ttyACM0", "Espressif native USB")]


def test_auto_with_several_pedals_lists_them(attached):
    attached(usb_port("/dev/ttyUSB1", 0x1A86, 0x7523), usb_port("/dev/ttyUSB0", 0x10C4, 0xEA60))
    with pytest.raises(UsageError) as caught:
        serialport.resolve_port("auto")
    assert str(caught.value) == ("several ESP32 pedals found on USB: /dev/ttyUSB0 (Silicon Labs CP210x), "
                                 "/dev/ttyUSB1 (WCH CH340); pass --port PATH")
