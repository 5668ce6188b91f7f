"""Link settings per serial console kind: the one table boards, firmware and docs use.

A board's `SERIAL` (boards/<board>/board.py) names its console.  The kinds, and what the
USB link (tonecore.link, docs/protocol.md) runs with on each:

    kind               console                          max frame  window  rx buffer  read   flush
    uart               REPL UART via a USB-UART bridge    1040       4096    240        1      16 KB
    usb-cdc            native USB CDC (ESP32-S2/S3)       4112      16384    0          1      64 KB
    usb-serial-jtag    USB Serial/JTAG (ESP32-C3/S3)      4112      16384    0          1      64 KB
    pty                the simulated pedal's pseudo-tty   4112     262144    0          4096  256 KB

A UART REPL has a 260-byte ring that drops on overflow: the host may only have that
many bytes unread by the pedal (less a margin).  Native USB holds the host back itself
(the host is NAKed), and so does the simulator's pty.  A push is flushed to flash every
16 KB on a UART (1.4 s of line at 115200: what a reset can cost), less often where the
line is fast.  "read" is how many bytes the console reads at once: a board's stdin
blocks until its buffer is full, so it is read a byte at a time after a poll.
"""

from .errors import UsageError

# kind -> (max raw frame, window, receive buffer, read size, flush every)
PROFILES = {
    "uart": (1024 + 16, 4096, 240, 1, 16 * 1024),
    "usb-cdc": (4096 + 16, 16384, 0, 1, 64 * 1024),
    "usb-serial-jtag": (4096 + 16, 16384, 0, 1, 64 * 1024),
    "pty": (4096 + 16, 262144, 0, 4096, 256 * 1024),
}
KINDS = ("uart", "usb-cdc", "usb-serial-jtag", "pty")


def profile(kind):
    """The settings tuple for console `kind`.

    Raises:
        UsageError: an unknown kind (a board.py with a SERIAL no profile covers).
    """
    settings = PROFILES.get(kind)
    if settings is None:
        raise UsageError("unknown serial console kind %r; the kinds are: %s" % (kind, ", ".join(KINDS)))
    return settings


def console_settings(kind, announced=None):
    """What the pedal's serial service runs with on a console of `kind`.

    The link settings are those of `announced` (default: `kind` itself; the simulator
    behind the link emulator's model of a UART announces "uart" on its pty); the read
    size is the console's own, never more than a frame.

    Returns:
        (max_frame, window, rx_buffer, read_size, flush_every).
    Raises:
        UsageError: either kind is unknown.
    """
    max_frame, window, rx_buffer, _, flush_every = profile(announced or kind)
    read_size = profile(kind)[3]
    return max_frame, window, rx_buffer, read_size if read_size < max_frame else max_frame, flush_every
