# MicroPython freeze manifest: a custom firmware image for the esp32_generic board with the pedal
# firmware built in (tonecore, pedal, microdot, boardinfo) instead of copied to flash.
#
#   tonebridge firmware build --board esp32_generic      # stages microdot and boardinfo.py
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/boards/esp32_generic/manifest.py
#
# MicroPython's tools/manifestfile.py runs this file with the current directory set to
# the file's own folder (no __file__), so the relative paths below start at
# boards/esp32_generic/.  main.py is deliberately not frozen: a frozen main.py would shadow the
# one on the flash; copy build/esp32_generic/main.py to the board instead.

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, networking, ...)

include("../firmware_manifest.py", board="esp32_generic")  # tonecore, pedal, microdot, boardinfo
