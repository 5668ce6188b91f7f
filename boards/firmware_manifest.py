# The part of every board's freeze manifest that is the same: the pedal firmware (tonecore,
# pedal, and microdot + boardinfo.py as staged by `tonebridge firmware build --board B`).
# A board's manifest.py includes it as  include("../firmware_manifest.py", board="B");
# MicroPython's manifestfile.py runs it with this folder (boards/) as the current
# directory and the include's keywords as `options`.

import os

package("tonecore", base_path="../shared")
package("pedal", base_path="../firmware")

stage = "../build/%s/stage" % options.board
if not os.path.isdir(stage):
    raise Exception(
        "%s is missing: run `tonebridge firmware build --board %s` first" % (os.path.abspath(stage), options.board))
package("microdot", files=("__init__.py", "microdot.py", "helpers.py"), base_path=stage)
module("boardinfo.py", base_path=stage)
