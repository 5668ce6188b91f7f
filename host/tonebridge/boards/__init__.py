"""The board tooling: what a pedal board is, and the firmware built and put on it.

    facts        boards/<board>/board.py read and checked: `Board`, `load_board`, `board_names`
    manifests    the MicroPython manifest.py files read on the host: which files make up the firmware
    build        the firmware compiled with mpy-cross into the layout of a board's flash
    flash        MicroPython's firmware image written to a bare board (esptool, the `flash` extra)
    deploy       a build copied to a board running stock MicroPython (mpremote)
    cas          the CA roots the boards trust (boards/<board>/ca/*.der)
    mpycross     mpy-cross itself (also the Makefile's compiler for the MicroPython tests)
    flashimage   a pedal's littlefs flash image read and written on the host

Errors are `FirmwareError` (a ToneError: the CLI prints one line and exits 1) or
`UsageError` (an unknown board, a board that cannot be deployed to, a wrong image: exit 2).
"""

from tonecore.errors import ToneError


class FirmwareError(ToneError):
    """A board file, a manifest, a build or a deploy failed; the message says what to do."""
