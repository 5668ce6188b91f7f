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

import os

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, networking, ...)

package("tonecore", base_path="../../shared")
package("pedal", base_path="../../firmware")

# What is not in this repository as a package: microdot (the pip package, three files)
# and this board's board.py renamed boardinfo.py, staged by `tonebridge firmware build`.
stage = "../../build/esp32_generic/stage"
if not os.path.isdir(stage):
    raise Exception(
        "%s is missing: run `tonebridge firmware build --board esp32_generic` first" % os.path.abspath(stage))
package("microdot", files=("__init__.py", "microdot.py", "helpers.py"), base_path=stage)
module("boardinfo.py", base_path=stage)
