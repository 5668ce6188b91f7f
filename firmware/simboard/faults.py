"""What the simulated board adds for the crash counter's tests: a reset cause, and
crashes on demand.  Not part of the pedal firmware (simboard is built for unix_sim only).

Reset cause.  A board's `machine.reset_cause()` tells a power-on from a reset; the unix
port has none.  Here a start that ends with an exception is a reset (the board's boot()
calls `machine.reset()` then): `note_reset()` leaves `<flash image>.reset` beside the
image, and the next start takes it (`reset_cause()` -> "reset").  Without that file the
start is a power-on ("power"): `SimulatedPedal.kill()` is a power cut and `stop()`
switches the pedal off.

Crashes on demand (tests): TONEBRIDGE_CRASH=<point>[:<exception>] makes that point of the
firmware raise that exception (default MemoryError) at every start:

    manifest   reading a manifest entry (pedal.library._entry)
    recover    tidying the flash at boot (Library.recover)
    session    reading the tokens (TokenFile.load)
    serve      starting the portal (Pedal.serve)
"""

import os

EXCEPTIONS = {"MemoryError": MemoryError, "RuntimeError": RuntimeError, "OSError": OSError,
              "ValueError": ValueError}


def reset_cause(image):
    """"reset" when the last start on `image` ended with an exception, else "power"
    (the marker is taken: the start after this one is a power-on unless it crashes)."""
    marker = image + ".reset"
    try:
        os.remove(marker)
        return "reset"
    except OSError:
        return "power"


def note_reset(image):
    """The firmware stopped with an exception: the next start is a reset, not a power-on."""
    try:
        with open(image + ".reset", "w") as f:
            f.write("reset\n")
    except OSError:
        pass


def _points():
    from pedal import library, main, tokens

    return {"manifest": (library, "_entry"), "recover": (library.Library, "recover"),
            "session": (tokens.TokenFile, "load"), "serve": (main.Pedal, "serve")}


def inject(spec):
    """Make the point named in `spec` ("<point>[:<exception>]") raise.

    Returns:
        an error message for a bad spec, else None.
    """
    point, _, name = spec.partition(":")
    error = EXCEPTIONS.get(name or "MemoryError")
    points = _points()
    if point not in points or error is None:
        return "TONEBRIDGE_CRASH must be <point>[:<exception>] with a point of %s and an exception of %s, not %s" % (
            ", ".join(sorted(points)), ", ".join(sorted(EXCEPTIONS)), spec)
    owner, attribute = points[point]

    def crash(*args, **kwargs):
        raise error("crash injected at %s (TONEBRIDGE_CRASH)" % point)

    setattr(owner, attribute, crash)
    return None
