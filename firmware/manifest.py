# The pedal firmware: every file a pedal runs, the one list of them.
#
#   pedal/             the firmware package (all of it)
#   tonecore/          the core, from shared/manifest.py
#   microdot/          the three modules of the microdot package the portal uses
#   boardinfo.py       the board's facts: boards/<board>/board.py under that name
#
# A MicroPython manifest (docs/reference/manifest.rst), read two ways: a board's
# manifest.py includes it, so MicroPython's make freezes these files into a custom image;
# `tonebridge firmware build` reads it (tonebridge.boards.manifests) and compiles the
# same files to .mpy for a board's flash.  Paths are relative to this folder.
#
# Options, from the board's include("../../firmware", board=..., stage=...):
#   board   the board's name (a folder of boards/)
#   stage   where microdot and boardinfo.py are staged, default ../build/<board>/stage:
#           `tonebridge firmware build --board <board>` copies them there, as MicroPython's
#           make can neither reach a pip package nor freeze board.py as boardinfo
#
# simboard/ (the simulated board's boot and flash) is not part of the firmware: only
# boards/unix_sim/manifest.py adds it.

include("../shared")
package("pedal")

stage = options.stage or "../build/%s/stage" % options.board
try:
    module("boardinfo.py", base_path=stage)
except Exception:
    raise Exception("%s has no boardinfo.py: run `tonebridge firmware build --board %s` first"
                    % (stage, options.board))
package("microdot", files=("__init__.py", "microdot.py", "helpers.py"), base_path=stage)
