# MicroPython freeze manifest: a custom firmware image for the unix_sim board with the pedal
# firmware built in (tonecore, pedal, microdot, boardinfo) instead of copied to flash.
#
#   tonebridge firmware build --board unix_sim      # stages microdot and boardinfo.py
#   make -C ports/unix FROZEN_MANIFEST=/path/to/boards/unix_sim/manifest.py
#
# MicroPython's tools/manifestfile.py runs this file with the current directory set to
# the file's own folder (no __file__), so the relative paths below start at
# boards/unix_sim/.  main.py is deliberately not frozen: a frozen main.py would shadow the
# one on the flash; copy build/unix_sim/main.py to the board instead.

import os

include("$(PORT_DIR)/variants/manifest.py")  # the unix port's own frozen modules (asyncio)

package("tonecore", base_path="../../shared")
package("pedal", base_path="../../firmware")

# What is not in this repository as a package: microdot (the pip package, three files)
# and this board's board.py renamed boardinfo.py, staged by `tonebridge firmware build`.
stage = "../../build/unix_sim/stage"
if not os.path.isdir(stage):
    raise Exception(
        "%s is missing: run `tonebridge firmware build --board unix_sim` first" % os.path.abspath(stage))
package("microdot", files=("__init__.py", "microdot.py", "helpers.py"), base_path=stage)
module("boardinfo.py", base_path=stage)
