# A classic ESP32 dev board (ESP32-WROOM-32 / DevKitC): 4 MB flash, no PSRAM, a USB-UART
# bridge.  Frozen or installed as the module `boardinfo`; plain literals only, so the same
# file loads on CPython and MicroPython.  Every field is described in boards/README.md.

NAME = "esp32_generic"
TITLE = "ESP32 (4 MB flash, no PSRAM)"
MCU = "esp32"
ARCH = "xtensawin"  # mpy-cross -march

# Putting MicroPython on it (`tonebridge firmware flash`): esptool's --chip, where the
# image goes (the ESP32's ROM loads the bootloader from 0x1000) and MicroPython's image for it
# (micropython.org/download/<board>/: the .bin whose name starts with this).
ESPTOOL_CHIP = "esp32"
FLASH_OFFSET = 0x1000
MICROPYTHON_IMAGE = "ESP32_GENERIC"

FLASH_BYTES = 4 * 1024 * 1024
# MicroPython (partitions-4MiBplus.csv) gives the first 2 MiB to the bootloader and the
# firmware image; the rest becomes the littlefs "vfs" partition.
FS_BYTES = 2 * 1024 * 1024
BLOCK_SIZE = 4096
FS_ROOT = "/"

# What the code may count on: a stock ESP32 build has ~110-160 KB free once Wi-Fi and TLS
# are up; the core's tests run under a 128 KB heap (make test-micropython).
HEAP_BUDGET = 128 * 1024
PSRAM_BYTES = 0

SERIAL = "uart"
# Dev boards ship with one of these bridges.
USB_IDS = (
    (0x10C4, 0xEA60, "Silicon Labs CP210x"),
    (0x1A86, 0x7523, "WCH CH340"),
    (0x1A86, 0x55D4, "WCH CH343"),
)
# DevKitC: the BOOT button (GPIO0) doubles as the footswitch, the blue LED is on GPIO2, an
# SSD1306 display on the default I2C pins.
PINS = {"footswitch": 0, "led": 2, "display_sda": 21, "display_scl": 22}

# Only the small NAM architectures run in real time on one 240 MHz Xtensa core.
FORMATS = {"nam": ("nano", "feather"), "ir": "*"}
# NAM architectures it runs (tonecore.records.ARCHITECTURES): A1 only; A2 needs the S3's
# vector unit and PSRAM.  "custom" models are filtered by size class (FORMATS).
NAM_ARCHITECTURES = ("1", "custom")
# A quarter of the 2 MB filesystem: room for several models next to the firmware and a
# download's .part file.  A nano/feather .nam is well under 200 KB; a 1 s 48 kHz 24-bit IR
# is ~144 KB.
MAX_MODEL_BYTES = 512 * 1024

# The most models it keeps (boards/README.md): every model costs ~330 bytes of heap on the
# 64-bit simulator (~200 on an ESP32), so the library takes at most a sixth of the heap.
MAX_MODELS = HEAP_BUDGET // 2048

CA_FILES = ("isrg-root-x1.der", "isrg-root-x2.der", "gts-root-r1.der", "gts-root-r4.der")
