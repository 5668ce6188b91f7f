"""The simulated pedal's flash: a littlefs block device backed by a host file.

The unix port has `vfs.VfsLfs2` but no flash, so `FileBlockDev` stands in for the
ESP32's flash partition: an image file of `block_count` blocks of `block_size` bytes.
littlefs calls it through the extended block-device interface (reads and writes at an
offset inside a block), and it forwards every call straight to the OS: MicroPython's
binary files are unbuffered, so a write is in the kernel's page cache when
`writeblocks` returns and survives a SIGKILL of the interpreter, the way a finished
flash program survives a power cut.

littlefs geometry, fixed so the host can read an image back with littlefs-python:

    block_size 4096, readsize 32, progsize 32, lookahead 32 (bytes)

These are MicroPython's `VfsLfs2` defaults, as the ESP32 port formats its own flash,
so the simulator runs the same cache sizes as the pedal. On the host:
`littlefs.LittleFS(block_size=4096, block_count=size // 4096, read_size=32,
prog_size=32, lookahead_size=32)`; only `block_size` and `block_count` are stored in
the superblock and must match, the rest only sizes the host's caches.
"""

import vfs
from micropython import const

BLOCK_SIZE = 4096
READ_SIZE = 32
PROG_SIZE = 32
LOOKAHEAD_SIZE = 32

# Block-device ioctl numbers (init 1 and erase 6 need nothing on a file).
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)


class FileBlockDev:
    """A block device for `vfs.VfsLfs2` over an image file on the host.

    Args:
        path: the image; it must exist and hold whole blocks.
        block_size: bytes per block (littlefs's erase unit).
        block_count: blocks to use; default all of the file.

    Raises:
        OSError: the file cannot be opened, or it is too small.
    """

    def __init__(self, path, block_size=BLOCK_SIZE, block_count=None):
        self.block_size = block_size
        self.file = open(path, "r+b")  # binary files are unbuffered on MicroPython
        size = self.file.seek(0, 2)
        if block_count is None:
            block_count = size // block_size
        if block_count < 2 or block_count * block_size > size:
            self.file.close()
            raise OSError("flash image %s: %d bytes, need %d blocks of %d" % (path, size, max(block_count, 2), block_size))
        self.block_count = block_count

    def readblocks(self, block, buf, offset=0):
        """Read len(buf) bytes from `offset` inside `block` into `buf`."""
        self.file.seek(block * self.block_size + offset)
        self.file.readinto(buf)

    def writeblocks(self, block, buf, offset=0):
        """Write `buf` at `offset` inside `block` (littlefs never writes across an erase)."""
        self.file.seek(block * self.block_size + offset)
        self.file.write(buf)

    def ioctl(self, op, arg):
        """littlefs's control calls: geometry, sync; erase is a no-op (0 = done)."""
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_SYNC or op == _IOCTL_DEINIT:
            self.file.flush()
        return 0  # init, erase: nothing to do on a file


def mount(bdev, root):
    """Mount littlefs from `bdev` at `root`, formatting it first if it holds none.

    Returns:
        the mounted `vfs.VfsLfs2`.
    """
    try:
        fs = vfs.VfsLfs2(bdev, readsize=READ_SIZE, progsize=PROG_SIZE, lookahead=LOOKAHEAD_SIZE)
    except OSError:
        print("flash: no filesystem, formatting %d KiB" % (bdev.block_count * bdev.block_size // 1024))
        vfs.VfsLfs2.mkfs(bdev, readsize=READ_SIZE, progsize=PROG_SIZE, lookahead=LOOKAHEAD_SIZE)
        fs = vfs.VfsLfs2(bdev, readsize=READ_SIZE, progsize=PROG_SIZE, lookahead=LOOKAHEAD_SIZE)
    vfs.mount(fs, root)
    return fs
