"""Where the parts of a tonebridge source checkout are.

The board tooling (`tonebridge firmware …`) and the simulated pedal (`tonebridge sim`)
work from the checkout's `boards/`, `firmware/` and `shared/` folders.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOARDS_DIR = os.path.join(ROOT, "boards")
FIRMWARE_DIR = os.path.join(ROOT, "firmware")
SHARED_DIR = os.path.join(ROOT, "shared")
BUILD_DIR = os.path.join(ROOT, "build")
