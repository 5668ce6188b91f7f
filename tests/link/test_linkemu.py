"""The link emulator: real ptys on both sides, pyserial on the host's.

The pedal's side is a pty pair the test holds (it reads the master as the firmware
would), except in the last tests, where it is a SimulatedPedal running a stand-in
firmware that never reads its console (so `rx_pending()` only grows).
"""

import fcntl
import os
import select
import struct
import termios
import threading
import time

import pytest
import serial

from tonebridge.dev.linkemu import LinkEmulator
from tonebridge.dev.simulator import SimulatedPedal

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def host_port():
    """open(path) -> a pyserial port on `path`; all closed afterwards."""
    ports = []

    def open_port(path, **options):
        port = serial.Serial(path, timeout=5, **options)
        ports.append(port)
        return port

    yield open_port
    for port in ports:
        try:
            port.close()
        except (OSError, serial.SerialException):
            pass


def unread(fd):
    count = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return struct.unpack("i", count)[0]


def read_exactly(fd, count, timeout=10.0):
    """`count` bytes from the pty master `fd`, or fewer if `timeout` seconds pass."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        try:
            data += os.read(fd, count - len(data))
        except OSError:  # EIO: nobody has the other end open
            break
    return bytes(data)


class Reader(threading.Thread):
    """Reads `count` bytes from `read(n)` (a pty master: a firmware that keeps up; a
    pyserial port's read), timing them."""

    def __init__(self, source, count):
        super().__init__(daemon=True)
        self.read = source if callable(source) else (lambda size: os.read(source, size))
        self.count = count
        self.data = bytearray()
        self.last = None

    def run(self):
        while len(self.data) < self.count:
            try:
                chunk = self.read(min(65536, self.count - len(self.data)))
            except OSError:  # EIO: the emulator has closed the port
                break
            if not chunk:
                break
            self.data += chunk
            self.last = time.monotonic()


def pattern(size, salt=0):
    return bytes((i * 7919 + salt + (i >> 8)) & 255 for i in range(size))


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# -- throttle ----------------------------------------------------------------------------


@pytest.mark.parametrize("baud", [115200, 921600])
def test_each_direction_runs_at_about_baud_over_10_at_the_same_time(pty_port, host_port, baud):
    master, path = pty_port
    size = int(baud / 10 * 1.2)  # 1.2 s of line time each way
    to_pedal, to_host = pattern(size), pattern(size, salt=1)
    with LinkEmulator(path, baud=baud) as emulator:
        port = host_port(emulator.host_path)
        pedal_reads, host_reads = Reader(master, size), Reader(port.read, size)
        writers = [threading.Thread(target=port.write, args=(to_pedal,), daemon=True),
                   threading.Thread(target=os.write, args=(master, to_host), daemon=True)]
        started = time.monotonic()
        for thread in [pedal_reads, host_reads] + writers:
            thread.start()
        for thread in [pedal_reads, host_reads] + writers:
            thread.join(10)
        stats = emulator.stats()
    assert bytes(pedal_reads.data) == to_pedal and bytes(host_reads.data) == to_host
    for reader in (pedal_reads, host_reads):
        rate = size / (reader.last - started)
        assert 0.85 <= rate / (baud / 10) <= 1.1, (rate, stats)
    assert stats["to_pedal_bytes"] == stats["to_host_bytes"] == size


def test_unthrottled_it_passes_every_byte_value_both_ways(pty_port, host_port):
    master, path = pty_port
    every_byte = bytes(range(256)) * 64
    with LinkEmulator(path) as emulator:
        port = host_port(emulator.host_path)
        port.write(every_byte)
        assert read_exactly(master, len(every_byte)) == every_byte
        os.write(master, every_byte[::-1])
        assert port.read(len(every_byte)) == every_byte[::-1]


def test_a_slow_line_back_pressures_the_host(pty_port, host_port):
    master, path = pty_port
    with LinkEmulator(path, baud=115200) as emulator:
        port = host_port(emulator.host_path)
        fd = port.fileno()
        os.set_blocking(fd, False)
        accepted = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                accepted += os.write(fd, bytes(4096))
            except BlockingIOError:
                time.sleep(0.01)
        # the emulator's 4 KB, the pty's own buffer and 0.5 s of line time; not the 1+ MB offered
        assert 4096 < accepted < 64 * 1024, accepted


# -- the pedal's receive buffer --------------------------------------------------------


def test_a_pedal_that_does_not_read_loses_what_overflows_its_receive_buffer(pty_port, host_port):
    master, path = pty_port
    with LinkEmulator(path, baud=115200, rx_buffer=260, rx_pending=lambda: unread(master)) as emulator:
        port = host_port(emulator.host_path)
        port.write(pattern(2000))
        assert wait_until(lambda: emulator.stats()["to_pedal_bytes"] + emulator.stats()["overflow_dropped"] == 2000)
        stats = emulator.stats()
    assert 260 <= stats["to_pedal_bytes"] <= 260 + 30, stats  # the ring, and a few slices the pty had not shown yet
    assert stats["overflow_dropped"] == 2000 - stats["to_pedal_bytes"]
    assert read_exactly(master, 2000, timeout=0.2) == pattern(stats["to_pedal_bytes"])  # the first bytes


def test_a_pedal_that_keeps_up_loses_nothing(pty_port, host_port):
    master, path = pty_port
    size = 5760  # 0.5 s at 115200; the ring fills in 22 ms if nobody reads
    reader = Reader(master, size)
    with LinkEmulator(path, baud=115200, rx_buffer=260, rx_pending=lambda: unread(master)) as emulator:
        port = host_port(emulator.host_path)
        reader.start()
        port.write(pattern(size))
        reader.join(10)
        stats = emulator.stats()
    assert stats["overflow_dropped"] == 0 and stats["to_pedal_bytes"] == size, stats
    assert bytes(reader.data) == pattern(size)


# -- faults ------------------------------------------------------------------------------


def send_through(path, master, data, host_port, **options):
    """`data` host -> pedal through a fresh emulator; (what the pedal got, stats)."""
    with LinkEmulator(path, **options) as emulator:
        port = host_port(emulator.host_path)
        reader = Reader(master, 1 << 62)  # until the emulator is done
        reader.start()
        port.write(data)
        assert wait_until(lambda: sum(emulator.stats()[key] for key in ("to_pedal_bytes", "to_pedal_dropped"))
                          == len(data))
        stats = emulator.stats()
    time.sleep(0.05)  # the reader takes the last bytes
    return bytes(reader.data), stats


def flipped_bits(a, b):
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b))


def test_drop_rate_and_ber_make_about_the_expected_faults_the_same_for_a_seed(pty_port, host_port):
    master, path = pty_port
    data = pattern(100000)

    received, stats = send_through(path, master, data, host_port, drop_rate=0.01, seed=7)
    assert 800 <= stats["to_pedal_dropped"] <= 1200, stats  # 1000 expected
    assert len(received) == len(data) - stats["to_pedal_dropped"] == stats["to_pedal_bytes"]
    assert stats["to_pedal_bits_flipped"] == 0

    flipped, stats = send_through(path, master, data, host_port, ber=1e-3, seed=7)
    assert 640 <= stats["to_pedal_bits_flipped"] <= 960, stats  # 800 expected
    assert len(flipped) == len(data) and flipped_bits(flipped, data) == stats["to_pedal_bits_flipped"]

    again, _ = send_through(path, master, data, host_port, ber=1e-3, seed=7)
    other, _ = send_through(path, master, data, host_port, ber=1e-3, seed=8)
    assert again == flipped and other != flipped  # the faults depend on the seed, not on timing


def test_faults_hit_the_host_side_only_with_both_ways(pty_port, host_port):
    master, path = pty_port
    for both_ways, expect_faults in ((True, True), (False, False)):
        with LinkEmulator(path, drop_rate=0.05, both_ways=both_ways) as emulator:
            port = host_port(emulator.host_path)
            assert wait_until(lambda: emulator.stats()["to_host_discarded"] == 0)
            time.sleep(0.02)  # the emulator has seen the host open its port
            os.write(master, bytes(2000))
            assert wait_until(lambda: emulator.stats()["to_host_bytes"] + emulator.stats()["to_host_dropped"] == 2000)
            assert (emulator.stats()["to_host_dropped"] > 0) is expect_faults
            port.close()


def test_a_fault_knob_can_be_turned_while_it_runs(pty_port, host_port):
    master, path = pty_port
    with LinkEmulator(path) as emulator:
        port = host_port(emulator.host_path)
        port.write(b"clean ")
        assert read_exactly(master, 6) == b"clean "
        emulator.drop_rate = 1.0
        port.write(b"lost")
        assert wait_until(lambda: emulator.stats()["to_pedal_dropped"] == 4)
        emulator.drop_rate = 0.0
        port.write(b"back")
        assert read_exactly(master, 4) == b"back"


# -- stalls and the cable ------------------------------------------------------------------


def test_a_stall_holds_bytes_back_for_that_long(pty_port, host_port):
    master, path = pty_port
    with LinkEmulator(path, baud=921600) as emulator:
        port = host_port(emulator.host_path)
        port.write(b"a")
        assert read_exactly(master, 1, timeout=1) == b"a"
        emulator.stall(0.3)
        started = time.monotonic()
        port.write(b"b")
        assert read_exactly(master, 1, timeout=2) == b"b"
        assert 0.28 <= time.monotonic() - started <= 0.6
        assert emulator.stats()["stalls"] == 1


def test_a_pulled_cable_fails_the_hosts_reads_and_writes_and_a_new_one_works(pty_port, host_port):
    master, path = pty_port
    with LinkEmulator(path, baud=921600) as emulator:
        first_path = emulator.host_path
        port = host_port(first_path)
        port.write(b"hello")
        assert read_exactly(master, 5) == b"hello"
        emulator.disconnect()
        assert emulator.host_path is None
        with pytest.raises(serial.SerialException):
            port.read(1)
        with pytest.raises(serial.SerialException):
            port.write(b"anyone?")
        new_path = emulator.reconnect()
        assert new_path == emulator.host_path and new_path != first_path
        again = host_port(new_path)
        again.write(b"back")
        assert read_exactly(master, 4) == b"back"
        os.write(master, b"welcome")
        assert again.read(7) == b"welcome"
        stats = emulator.stats()
    assert stats["disconnects"] == 1 and stats["reconnects"] == 1


def test_disconnect_after_pulls_the_cable_after_exactly_that_many_bytes(pty_port, host_port):
    master, path = pty_port
    with LinkEmulator(path, baud=921600) as emulator:
        port = host_port(emulator.host_path)
        emulator.disconnect_after(3000)
        port.write(pattern(10000))
        assert read_exactly(master, 10000, timeout=1) == pattern(3000)
        with pytest.raises(serial.SerialException):
            port.read(1)
        assert emulator.stats()["disconnects"] == 1

        again = host_port(emulator.reconnect())
        emulator.disconnect_after(10)
        emulator.disconnect_after(None)  # disarmed: nothing is cut
        again.write(pattern(100))
        assert read_exactly(master, 100) == pattern(100)
        assert emulator.stats()["disconnects"] == 1


def test_close_leaves_no_thread_and_no_descriptor_behind(pty_port, host_port):
    master, path = pty_port
    fds_before = set(os.listdir("/proc/self/fd"))
    emulator = LinkEmulator(path, baud=115200).start()
    port = host_port(emulator.host_path)
    port.write(b"x" * 100)
    emulator.disconnect()
    emulator.reconnect()
    emulator.close()
    port.close()
    assert not [thread for thread in threading.enumerate() if thread.name == "linkemu"]
    assert set(os.listdir("/proc/self/fd")) == fds_before


# -- with a simulated pedal ------------------------------------------------------------

# A stand-in firmware: it boots like simboard.boot must (the portal line) and never reads its
# console, so everything written to the pedal stays pending.
DEAF_PEDAL = """import os, time
print("portal: listening on http://" + os.getenv("TONEBRIDGE_PORTAL") + "/")
while True:
    time.sleep(1)
"""


@pytest.fixture
def deaf_pedal(tmp_path):
    """A started SimulatedPedal whose firmware never reads its serial input."""
    lib = tmp_path / "lib"
    (lib / "simboard").mkdir(parents=True)
    (lib / "simboard" / "__init__.py").write_text("")
    (lib / "simboard" / "boot.py").write_text(DEAF_PEDAL)
    # no API is reachable at this URL: the stand-in (like the real portal) starts without one
    pedal = SimulatedPedal("http://127.0.0.1:9/api/v1", str(tmp_path / "flash.img"), lib=str(lib),
                           total_heap=256 * 1024)
    fds_before = set(os.listdir("/proc/self/fd"))
    pedal.start(timeout=15)
    yield pedal
    pedal.kill()
    assert set(os.listdir("/proc/self/fd")) == fds_before  # stop and kill close what start opened


def test_the_simulated_pedal_counts_what_its_firmware_has_not_read(deaf_pedal, host_port):
    assert deaf_pedal.rx_pending() == 0
    port = host_port(deaf_pedal.serial_path)
    port.write(pattern(100))
    assert wait_until(lambda: deaf_pedal.rx_pending() == 100), deaf_pedal.rx_pending()
    port.write(pattern(66000))  # more than the stdin pipe holds (64 KB): the relay and the pty keep the rest
    # Counted into the tens of KB (the pipe, the relay, the pty); near the pipe's 64 KB up to
    # ~1 KB can sit in pty buffers FIONREAD does not see (rx_pending's docstring), and a
    # receive-buffer model (a few hundred bytes) never gets near that.
    assert wait_until(lambda: deaf_pedal.rx_pending() >= 64000), deaf_pedal.rx_pending()
    time.sleep(0.1)
    assert 64000 <= deaf_pedal.rx_pending() <= 66100


def test_the_esp32_ring_in_front_of_a_simulated_pedal_that_does_not_read(deaf_pedal, host_port):
    with LinkEmulator(deaf_pedal.serial_path, baud=115200, rx_buffer=260,
                      rx_pending=deaf_pedal.rx_pending) as emulator:
        port = host_port(emulator.host_path)
        port.write(pattern(1000))
        assert wait_until(lambda: emulator.stats()["to_pedal_bytes"] + emulator.stats()["overflow_dropped"] == 1000)
        stats = emulator.stats()
    assert 260 <= stats["to_pedal_bytes"] <= 260 + 30 and deaf_pedal.rx_pending() == stats["to_pedal_bytes"], stats
    assert stats["overflow_dropped"] == 1000 - stats["to_pedal_bytes"]
