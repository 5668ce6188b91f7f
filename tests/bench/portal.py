"""The pedal's portal under a minute of hostile connections (issue: nothing on the
network can brick the pedal).

The simulated pedal (real firmware, the board's heap) serves its page while about 1,000
hostile connections (idle, slowloris, 400 KB lines, 4,000 headers, garbage,
half-closed bodies: tests/helpers/portal_flood.py) come and go over 60 s; the owner's
phone asks for /status.json every 0.25 s.  Reported: connections, the slowest normal
answer (goal < 2 s), and the live heap before and 10 s after (goal: back to baseline,
within 4 KB).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "helpers"))

from pedal_helpers import portal  # noqa: E402
from portal_flood import flood  # noqa: E402

SECONDS = 60
RATE = 28  # asked for; what the threads reach is ~1,000 a minute (reported)
HEAP_GOAL = 4096


def measure_portal_flood(work, seconds=SECONDS, rate=RATE):
    from tonebridge.dev.simulator import SimulatedPedal

    flash = os.path.join(work, "flood.img")
    env = {"TONEBRIDGE_SYNC_ON_BOOT": "0"}
    with SimulatedPedal("http://127.0.0.1:9/api/v1", flash, env=env) as pedal:
        pedal.start()
        owner = portal(pedal)
        baseline = owner.get("status.json").json()["heap"]["alloc"]
        host, port = pedal.portal_url[len("http://"):].rstrip("/").rsplit(":", 1)

        def probe():
            owner.get("status.json", timeout=10).raise_for_status()

        opened, slowest, probes = flood(host, int(port), seconds, rate, probe)
        time.sleep(10)
        after = owner.get("status.json").json()["heap"]["alloc"]
        alive = pedal.returncode is None
    return {
        "hostile_connections": opened,
        "seconds": seconds,
        "normal_requests": probes,
        "slowest_normal_s": round(slowest, 3),
        "slowest_goal_met": slowest < 2.0,
        "heap_alloc_before": baseline,
        "heap_alloc_after": after,
        "heap_goal_met": after - baseline < HEAP_GOAL,
        "pedal_alive": alive,
    }


if __name__ == "__main__":
    import json
    import tempfile

    print(json.dumps(measure_portal_flood(tempfile.mkdtemp(prefix="tonebridge-flood-")), indent=2))
