#!/bin/sh
# Build the MicroPython unix port with the pedal firmware frozen in, so the simulated
# pedal keeps its bytecode out of the heap the way a board with a custom image does.
#
#   tools/frozen-unix-port.sh /path/to/micropython-source   # a checkout; no submodules needed
#   TONEBRIDGE_MICROPYTHON=/path/to/micropython-source/ports/unix/build-standard/micropython \
#       tonebridge sim ...        # --heap (default 128k) is then the whole heap, as on a board
#
# Not part of `make`: it needs MicroPython's source tree, which PyPI does not carry.
# SSL, btree and ffi are left out (they need submodules); the simulator talks plain
# http to the emulator.
set -eu
src=${1:?usage: tools/frozen-unix-port.sh MICROPYTHON_SOURCE_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/.venv/bin/tonebridge" firmware build --board unix_sim >/dev/null  # stages microdot, boardinfo.py
[ -e "$src/lib/micropython-lib/README.md" ] || touch "$src/lib/micropython-lib/README.md"  # checked, unused
make -C "$src/mpy-cross" -j2 >/dev/null
make -C "$src/ports/unix" -j2 VARIANT=standard FROZEN_MANIFEST="$here/boards/unix_sim/manifest.py" \
    MICROPY_PY_SSL=0 MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0 MICROPY_USE_READLINE=0 >/dev/null
echo "$src/ports/unix/build-standard/micropython"
