"""The simulated board (MicroPython unix port): its boot and its file-backed flash.

Not part of the pedal firmware: only the unix_sim board's manifest
(boards/unix_sim/manifest.py) adds this package.  `tonebridge sim` starts it with
`micropython -m simboard.boot`.
"""
