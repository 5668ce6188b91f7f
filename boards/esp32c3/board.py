# An ESP32-C3 board (ESP32-C3-DevKitM-1, C3 SuperMini): 4 MB flash, no PSRAM, one RISC-V
# core, the built-in USB Serial/JTAG.  Frozen or installed as the module `boardinfo`;
# plain literals only, so the same file loads on CPython and MicroPython.  Every field is
# described in boards/README.md.

NAME = "esp32c3"
TITLE = "ESP32-C3 (4 MB flash, no PSRAM)"
MCU = "esp32c3"
ARCH = "rv32imc"  # mpy-cross -march

# Putting MicroPython on it (`tonebridge firmware flash`): esptool's --chip, where the
# image goes (the C3's ROM loads the bootloader from 0x0) and MicroPython's image for it
# (micropython.org/download/<board>/: the .bin whose name starts with this).
ESPTOOL_CHIP = "esp32c3"
FLASH_OFFSET = 0x0
MICROPYTHON_IMAGE = "ESP32_GENERIC_C3"

FLASH_BYTES = 4 * 1024 * 1024
# The first 2 MiB hold the bootloader and firmware; MicroPython makes the rest littlefs.
FS_BYTES = 2 * 1024 * 1024
BLOCK_SIZE = 4096
FS_ROOT = "/"

# The C3 has 400 KB of SRAM and no Bluetooth Classic stack to feed, so more of it is left
# to MicroPython than on the ESP32 (~180-200 KB free after boot); 160 KB keeps a margin
# for Wi-Fi and TLS buffers.
HEAP_BUDGET = 160 * 1024
PSRAM_BYTES = 0

SERIAL = "usb-serial-jtag"
USB_IDS = (
    (0x303A, 0x1001, "Espressif USB Serial/JTAG"),
    (0x10C4, 0xEA60, "Silicon Labs CP210x"),  # DevKitM-1's UART bridge
    (0x1A86, 0x7523, "WCH CH340"),
)
# DevKitM-1: BOOT button on GPIO9, the RGB LED (WS2812) on GPIO8, an SSD1306 display on
# I2C GPIO4/5.
PINS = {"footswitch": 9, "led": 8, "display_sda": 4, "display_scl": 5}

# One 160 MHz RISC-V core without an FPU: the nano NAM and convolution with an IR only.
FORMATS = {"nam": ("nano",), "ir": "*"}
# NAM architectures it runs (tonecore.records.ARCHITECTURES): A1 only.
NAM_ARCHITECTURES = ("1", "custom")
# A quarter of the 2 MB filesystem, as on the ESP32.
MAX_MODEL_BYTES = 512 * 1024

# The most models it keeps (boards/README.md): every model costs ~330 bytes of heap on the
# 64-bit simulator (~200 on an ESP32), so the library takes at most a sixth of the heap.
MAX_MODELS = HEAP_BUDGET // 2048

CA_FILES = ("isrg-root-x1.der", "isrg-root-x2.der", "gts-root-r1.der", "gts-root-r4.der")
