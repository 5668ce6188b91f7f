# MicroPython freeze manifest: a custom firmware image for the unix_sim board with the pedal
# firmware built in (tonecore, pedal, microdot, boardinfo) instead of copied to flash.
#
#   tonebridge firmware build --board unix_sim      # stages microdot and boardinfo.py
#   make -C ports/unix FROZEN_MANIFEST=/path/to/boards/unix_sim/manifest.py \
#        MICROPY_PY_SSL=0 MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0   # (no submodules needed)
#
# or `tools/frozen-unix-port.sh /path/to/micropython`, which does exactly that.  The
# result runs the simulated pedal with its code in "flash" as a board does:
# TONEBRIDGE_MICROPYTHON=<that binary> (see docs/pedal.md).
#
# MicroPython's tools/manifestfile.py runs this file with the current directory set to
# the file's own folder (no __file__), so the relative paths below start at
# boards/unix_sim/.  The simulator starts with `micropython -m pedal.sim`: no main.py.

# Only asyncio from the port's own set: the unix variants also freeze micropython-lib
# packages (mip, ssl, unix-ffi) a pedal does not use, and those need its submodule.
include("$(MPY_DIR)/extmod/asyncio")

include("../firmware_manifest.py", board="unix_sim")  # tonecore, pedal, microdot, boardinfo
