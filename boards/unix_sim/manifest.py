# MicroPython freeze manifest: a custom firmware image for the unix_sim board with the pedal
# firmware built in (tonecore, pedal, microdot, boardinfo, and the simulated board's own
# simboard package) instead of compiled to .mpy files.
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
# boards/unix_sim/.  `tonebridge firmware build` reads the same file (without
# MicroPython's own asyncio manifest, which only its make can read) to know what to
# compile.  The simulator starts with `micropython -m simboard.boot`: no main.py.

# Only asyncio from the port's own set: the unix variants also freeze micropython-lib
# packages (mip, ssl, unix-ffi) a pedal does not use, and those need its submodule.
include("$(MPY_DIR)/extmod/asyncio")

# The firmware (firmware/manifest.py).  options.stage is None under MicroPython's make (the
# firmware then takes build/<board>/stage); `tonebridge firmware build` sets it to its own.
include("../../firmware", board="unix_sim", stage=options.stage)

# The simulated board's boot and its file-backed flash: this board only.
package("simboard", base_path="../../firmware")
