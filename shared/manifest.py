# tonecore, the client core: the same modules on the host and on the pedal.
#
# A MicroPython manifest (docs/reference/manifest.rst): firmware/manifest.py includes it,
# MicroPython's make reads it when it freezes a custom image, and `tonebridge firmware
# build` reads it (tonebridge.boards.manifests) to compile the same files for a board's
# flash.  Paths are relative to this folder.

package("tonecore")
