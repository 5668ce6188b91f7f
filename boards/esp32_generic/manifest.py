# MicroPython freeze manifest: a custom firmware image for the esp32_generic board with the pedal
# firmware built in (tonecore, pedal, microdot, boardinfo) instead of copied to flash.
#
#   tonebridge firmware build --board esp32_generic      # stages microdot and boardinfo.py
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/boards/esp32_generic/manifest.py
#
# MicroPython's tools/manifestfile.py runs this file with the current directory set to
# the file's own folder (no __file__), so the relative paths below start at
# boards/esp32_generic/.  `tonebridge firmware build` reads the same file (without the port's
# own manifest, which only MicroPython's make can read) to know what to compile.
# main.py is deliberately not frozen: a frozen main.py would shadow the one on the
# flash; copy build/esp32_generic/main.py to the board instead.

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, networking, ...)

# The firmware (firmware/manifest.py).  options.stage is None under MicroPython's make (the
# firmware then takes build/<board>/stage); `tonebridge firmware build` sets it to its own.
include("../../firmware", board="esp32_generic", stage=options.stage)
