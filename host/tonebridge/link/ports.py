"""Finding and opening a pedal's USB serial port (pyserial), without resetting it.

    resolve_port("auto")  -> "/dev/ttyUSB0"   the one attached ESP32 (usb_ids()), or a UsageError
    open_port(path, baud) -> PedalSerial      exclusive, DTR and RTS set so the ESP32 keeps running

Every failure to open is one `UsageError` a user can act on (no such port, busy, no
permission), never a traceback.

DTR and RTS.  ESP32 dev boards wire the USB-UART bridge's RTS to EN (reset) and DTR to
GPIO0 (boot mode) through two transistors, so that the chip is held in reset only while
RTS is asserted and DTR is not, and GPIO0 is pulled low only while DTR is asserted and
RTS is not; both asserted, or both released, leave it running (esptool
docs/en/advanced-topics/boot-mode-selection.rst; its classic reset is "DTR off, RTS on,
wait, DTR on, RTS off").  Native USB (the S2/S3 USB-OTG CDC of MicroPython and the
S3/C3 USB-Serial/JTAG) read the same lines as signals: MicroPython's TinyUSB CDC
(shared/tinyusb/mp_usbd_cdc.c) enters the bootloader on a change from (RTS on, DTR off)
to (DTR on, RTS off), and sends the console only while DTR is asserted.

What happens on open (pyserial 3.5 serial/serialposix.py `Serial.open`): `os.open`,
and on Linux the tty layer itself asserts DTR and RTS together as the device opens
(whatever pyserial was asked); then `_reconfigure_port` (the exclusive flock, termios),
then `_update_dtr_state()` before `_update_rts_state()` (ENOTTY and EINVAL ignored, so a
pty, which has no modem lines, opens fine), then the input buffer is flushed.  So we ask
for DTR and RTS both asserted, pyserial's default, set explicitly: each of pyserial's two
writes then changes nothing, and no state in between has RTS without DTR.  Asking for
both released instead (mpremote's recipe for the CP210x driver on Windows) would, on
Linux, go from the kernel's (on, on) through (DTR off, RTS on): a reset pulse on every
open.  mpremote (tools/mpremote/mpremote/transport_serial.py) likewise keeps pyserial's
default everywhere else.  On close, `PedalSerial.close` releases RTS before DTR (as
mpremote does), passing through (DTR on, RTS off), never through the reset state, before
the kernel drops both lines (HUPCL).
"""

import errno
import functools
import os
import stat

import serial
import serial.tools.list_ports

from tonecore.errors import ToneError, UsageError

from tonebridge.boards.facts import board_names, load_board

DEFAULT_BAUD = 115200
ESPRESSIF_VID = 0x303A

# (vid, pid or None for any, description): USB serial devices an ESP32 pedal shows up as.
KNOWN_BRIDGES = (
    (ESPRESSIF_VID, None, "Espressif native USB"),  # USB-Serial/JTAG (0x1001) and TinyUSB CDC alike
    (0x10C4, 0xEA60, "Silicon Labs CP210x"),
    (0x1A86, 0x7523, "WCH CH340"),
    (0x1A86, 0x55D3, "WCH CH343"),
    (0x1A86, 0x55D4, "WCH CH9102"),  # a CH343 variant on many ESP32 dev boards
)

NONE_FOUND = ("no ESP32 pedal found on USB (looked for Espressif native USB, CP210x, CH340/CH343); "
              "pass --port PATH")


def _board_usb_ids():
    """The USB_IDS of every board in boards/."""
    found = []
    for name in board_names():
        try:
            found.extend(load_board(name).usb_ids)
        except ToneError:  # a broken board.py: the bridges above still cover the usual boards
            continue
    return found


@functools.lru_cache(maxsize=1)
def usb_ids():
    """(vid, pid or None, description) of every USB device an ESP32 pedal can be: the
    bridges above, then each board's own USB_IDS.  Read from the boards on first use."""
    ids = []
    for vid, pid, description in list(KNOWN_BRIDGES) + _board_usb_ids():
        if not any(vid == known_vid and known_pid in (None, pid) for known_vid, known_pid, _ in ids):
            ids.append((vid, pid, description))
    return tuple(ids)


def describe_usb(vid, pid):
    """The description of the USB device `vid`:`pid` if an ESP32 pedal can be one, else None."""
    for known_vid, known_pid, description in usb_ids():
        if vid == known_vid and known_pid in (None, pid):
            return description
    return None


def find_ports():
    """The attached serial ports that may be an ESP32 pedal.

    Returns:
        a list of (device path, description), sorted by path.
    """
    found = []
    for info in serial.tools.list_ports.comports():
        description = describe_usb(info.vid, info.pid)
        if description is not None:
            found.append((info.device, description))
    return sorted(found)


def resolve_port(port):
    """The device to open for `port`: a path as given, or for "auto" (or None) the one
    attached ESP32.

    Raises:
        UsageError: "auto" and none, or several, were found.
    """
    if port not in (None, "auto"):
        return port
    found = find_ports()
    if not found:
        raise UsageError(NONE_FOUND)
    if len(found) > 1:
        raise UsageError("several ESP32 pedals found on USB: %s; pass --port PATH"
                         % ", ".join("%s (%s)" % entry for entry in found))
    return found[0][0]


class PedalSerial(serial.Serial):
    """pyserial's Serial that releases RTS before DTR when it closes (see the module doc)."""

    def close(self):
        if self.is_open:
            try:
                self.rts = False
                self.dtr = False
            except OSError:  # a pty has no modem lines (ENOTTY); an unplugged device (EIO)
                pass
        super().close()


def open_port(path, baud=DEFAULT_BAUD, timeout=1.0, write_timeout=None):
    """Open the pedal's serial port `path` for this program only, without resetting it.

    Args:
        path: the device, e.g. /dev/ttyUSB0 (see `resolve_port`).
        baud: the line rate (native USB ignores it).
        timeout: seconds a read waits (None: forever, 0: never).
        write_timeout: seconds a write waits (None: forever).
    Returns:
        an open `PedalSerial`: 8N1, no flow control, DTR and RTS asserted.
    Raises:
        UsageError: no such port, it is busy (open in another program), no permission,
            or it is not a serial port.
    """
    port = PedalSerial()  # no port given yet: nothing is opened before the settings are made
    try:
        port.port = path
        port.baudrate = baud
        port.timeout = timeout
        port.write_timeout = write_timeout
        port.xonxoff = port.rtscts = port.dsrdtr = False  # the lines stay ours (and the ESP32's EN/GPIO0)
        port.exclusive = True  # flock: a second program (or a second open here) gets "busy"
        port.dtr = True  # applied in this order by open(): DTR first, so never RTS alone
        port.rts = True
        port.open()
    except ValueError as error:  # a baud rate or timeout pyserial does not take
        raise UsageError("cannot use serial port %s: %s" % (path, error)) from None
    except serial.SerialException as error:
        raise _open_error(path, error) from None
    return port


def _open_error(path, error):
    code = getattr(error, "errno", None)
    if code in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
        return UsageError("no serial port %s" % path)
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
        return UsageError("serial port %s is busy (another program has it open)" % path)
    if code in (errno.EACCES, errno.EPERM):
        return UsageError("no permission to open serial port %s; on Linux add yourself to the dialout group "
                          "(sudo usermod -aG dialout $USER), then log out and in again" % path)
    if code is None and _not_a_device(path):  # pyserial's termios calls failed on it
        return UsageError("%s is not a serial port" % path)
    reason = os.strerror(code) if code else str(error)
    return UsageError("cannot open serial port %s: %s" % (path, reason))


def _not_a_device(path):
    try:
        return not stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False
