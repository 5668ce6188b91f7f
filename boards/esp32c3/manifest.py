# MicroPython freeze manifest: a custom firmware image for the esp32c3 board with the pedal
# firmware built in (tonecore, pedal, microdot, boardinfo) instead of copied to flash.
#
#   tonebridge firmware build --board esp32c3      # stages microdot and boardinfo.py
#   make -C ports/esp32 BOARD=ESP32_GENERIC_C3 FROZEN_MANIFEST=/path/to/boards/esp32c3/manifest.py
#
# MicroPython's tools/manifestfile.py runs this file with the current directory set to
# the file's own folder (no __file__), so the relative paths below start at
# boards/esp32c3/.  main.py is deliberately not frozen: a frozen main.py would shadow the
# one on the flash; copy build/esp32c3/main.py to the board instead.

import os

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, networking, ...)

package("tonecore", base_path="../../shared")
package("pedal", base_path="../../firmware")

# What is not in this repository as a package: microdot (the pip package, three files)
# and this board's board.py renamed boardinfo.py, staged by `tonebridge firmware build`.
stage = "../../build/esp32c3/stage"
if not os.path.isdir(stage):
    raise Exception(
        "%s is missing: run `tonebridge firmware build --board esp32c3` first" % os.path.abspath(stage))
package("microdot", files=("__init__.py", "microdot.py", "helpers.py"), base_path=stage)
module("boardinfo.py", base_path=stage)
