# The simulated pedal: the firmware on the MicroPython unix port (`tonebridge sim`), with a
# littlefs image file as its flash and a pty as its USB serial port.  Frozen or installed
# as the module `boardinfo`; plain literals only, so the same file loads on CPython and
# MicroPython.  Every field is described in boards/README.md.

NAME = "unix_sim"
TITLE = "Simulated pedal (MicroPython unix port)"
MCU = "unix"
ARCH = None  # portable bytecode only, run by the host's micropython

# Nothing to flash: the simulator is the unix port on this computer.
ESPTOOL_CHIP = None
FLASH_OFFSET = None
MICROPYTHON_IMAGE = None

FLASH_BYTES = 16 * 1024 * 1024
FS_BYTES = 16 * 1024 * 1024  # the whole littlefs image
BLOCK_SIZE = 4096
FS_ROOT = "/flash"

# The ESP32's budget, so that the simulator runs out of memory where a real pedal would.
HEAP_BUDGET = 128 * 1024
PSRAM_BYTES = 0

SERIAL = "pty"
USB_IDS = ()
PINS = {}

# The simulator plays nothing: it stores whatever a real pedal might.
FORMATS = {"nam": "*", "ir": "*", "aida-x": "*", "proteus": "*", "aa-snapshot": "*"}
# NAM architectures it runs: all of them.
NAM_ARCHITECTURES = ("1", "2", "custom")
# Larger than FS_BYTES on purpose: on the simulator the free-space check, not this limit,
# is what refuses a file too big for the flash (so a test can reach "flash full").
MAX_MODEL_BYTES = 32 * 1024 * 1024

# The most models it keeps (boards/README.md): every model costs ~330 bytes of heap on the
# 64-bit simulator (~200 on an ESP32), so the library takes at most a sixth of the heap.
MAX_MODELS = HEAP_BUDGET // 2048

# The simulator talks to the emulator over http, or gets a CA file at run time.
CA_FILES = ()
