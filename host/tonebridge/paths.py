"""Where the firmware's sources are: boards/, firmware/ and shared/, and where builds go.

The board tooling (`tonebridge firmware …`) and the simulated pedal (`tonebridge sim`)
build from these three folders, which refer to each other by relative paths (their
manifest.py files).  ROOT is the folder holding them:

    a source checkout          the checkout itself (edit, rebuild); builds go to <checkout>/build
    an installed wheel         the copy shipped in the package, tonebridge/firmware_sources/
                               (pyproject.toml's package data); builds go to the user's
                               cache folder, as site-packages is no place for them
"""

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(PACKAGE_DIR))  # host/tonebridge -> the checkout
SHIPPED = os.path.join(PACKAGE_DIR, "firmware_sources")


def is_source_tree(folder):
    """True when `folder` holds boards/, firmware/manifest.py and shared/manifest.py."""
    return (os.path.isdir(os.path.join(folder, "boards"))
            and os.path.isfile(os.path.join(folder, "firmware", "manifest.py"))
            and os.path.isfile(os.path.join(folder, "shared", "manifest.py")))


def _build_dir(root):
    if root == CHECKOUT:
        return os.path.join(CHECKOUT, "build")
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("tonebridge"), "build")


ROOT = CHECKOUT if is_source_tree(CHECKOUT) else SHIPPED
BUILD_DIR = _build_dir(ROOT)
