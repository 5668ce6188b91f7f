# An ESP32-S3 board (ESP32-S3-DevKitC-1 N8R8): 8 MB flash, 8 MB octal PSRAM, native USB.
# Frozen or installed as the module `boardinfo`; plain literals only, so the same file
# loads on CPython and MicroPython.  Every field is described in boards/README.md.

NAME = "esp32s3"
TITLE = "ESP32-S3 (8 MB flash, 8 MB PSRAM)"
MCU = "esp32s3"
ARCH = "xtensawin"  # mpy-cross -march

# Putting MicroPython on it (`tonebridge firmware flash`): esptool's --chip, where the
# image goes (the S3's ROM loads the bootloader from 0x0; the SPIRAM_OCT variant
# drives the N8R8's octal PSRAM) and MicroPython's image for it
# (micropython.org/download/<board>/: the .bin whose name starts with this).
ESPTOOL_CHIP = "esp32s3"
FLASH_OFFSET = 0x0
MICROPYTHON_IMAGE = "ESP32_GENERIC_S3-SPIRAM_OCT"

FLASH_BYTES = 8 * 1024 * 1024
# The first 2 MiB hold the bootloader and firmware; MicroPython makes the rest littlefs.
FS_BYTES = 6 * 1024 * 1024
BLOCK_SIZE = 4096
FS_ROOT = "/"

# With SPIRAM MicroPython puts its heap in PSRAM; budget a quarter of it and leave the
# rest to the audio engine's buffers.
HEAP_BUDGET = 2 * 1024 * 1024
PSRAM_BYTES = 8 * 1024 * 1024

SERIAL = "usb-cdc"  # MicroPython's REPL on the native USB port (TinyUSB CDC)
USB_IDS = (
    (0x303A, 0x1001, "Espressif native USB"),
    (0x1A86, 0x55D4, "WCH CH343"),  # the DevKitC-1 "UART" port
    (0x10C4, 0xEA60, "Silicon Labs CP210x"),
)
# DevKitC-1: BOOT button on GPIO0, the RGB LED (WS2812) on GPIO48 (GPIO38 on board v1.1),
# an SSD1306 display on I2C GPIO8/9.
PINS = {"footswitch": 0, "led": 48, "display_sda": 8, "display_scl": 9}

# Two cores with vector extensions and PSRAM: every NAM size, AIDA-X, any IR.
FORMATS = {
    "nam": ("standard", "lite", "feather", "nano", "custom"),
    "aida-x": "*",
    "ir": "*",
}
# NAM architectures it runs (tonecore.records.ARCHITECTURES): A1 and A2.
NAM_ARCHITECTURES = ("1", "2", "custom")
# A third of the 6 MB filesystem; a standard .nam is ~300-400 KB of JSON.
MAX_MODEL_BYTES = 2 * 1024 * 1024

# The most models it keeps: every model costs ~330 bytes of heap on the 64-bit simulator (~200
# on an ESP32) and every install rewrites the whole manifest, so the rule for the small boards
# (HEAP_BUDGET // 2048) is capped here by the rewrite, not the heap.
MAX_MODELS = 256

CA_FILES = ("isrg-root-x1.der", "isrg-root-x2.der", "gts-root-r1.der", "gts-root-r4.der")
