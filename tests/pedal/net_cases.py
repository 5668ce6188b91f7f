"""Runs pedal.net cases under the MicroPython unix port (driven by test_pedal_net.py).

argv[1]: a JSON file: a list of cases, each {"name", "kind", "url", ...}.  Prints one
JSON line per case: {"name", "status"?, "bytes"?, "sha256"?, "error"?, "message"?,
"open", "ms"} - `open` is the number of sockets the client still holds (must be 0), `ms`
how long the case took.  A case may set "limits" (Http's, see pedal.net.LIMITS).
"""

import asyncio
import json
import sys
import time

from pedal.net import AsyncioDriver, Http
from tonecore.auth import OtpSignIn
from tonecore.client import Client
from tonecore.download import DownloadPlan
from tonecore.http import Request
from tonecore.session import Session, Tokens


def clock():
    return time.ticks_ms()


class Sink:
    """A download sink that keeps only a count (the plan hashes the bytes)."""

    def __init__(self):
        self.size = 0

    def write(self, chunk):
        self.size += len(chunk)

    def truncate(self):
        self.size = 0


async def run(case):
    cas = []
    if case.get("ca"):
        with open(case["ca"], "rb") as f:
            cas.append(f.read())
    http = Http(cas, io_timeout_ms=case.get("timeout_ms", 5000), deadline_ms=case.get("deadline_ms", 10000),
                limits=case.get("limits"))
    result = {"name": case["name"]}
    started = time.ticks_ms()
    try:
        kind = case["kind"]
        if kind == "get":
            response = await http.send(Request("GET", case["url"]))
            result["status"] = response.status
            result["bytes"] = len(response.body)
            result["body"] = response.body[:200].decode()
        else:
            api = case["api"]
            session = Session(OtpSignIn(api, None), Tokens("ACCESS-SECRET", "REFRESH-SECRET", 3600, clock() + 3600000))
            client = Client(api, session, clock)
            driver = AsyncioDriver(http)
            if kind == "api":
                data = await driver.run_async(client.get_json(case["path"]))
                result["status"] = 200
                result["json"] = data
            elif kind == "download":
                plan = DownloadPlan(case["url"], case.get("filename", "model.nam"), max_failures=case.get("failures", 1))
                sink = Sink()
                result["sha256"] = await driver.run_async(client.download(plan, sink))
                result["bytes"] = sink.size
    except Exception as exc:  # the case reports what it got; the test judges it
        result["error"] = type(exc).__name__
        result["message"] = str(exc)
    result["open"] = http.open
    result["ms"] = time.ticks_diff(time.ticks_ms(), started)
    return result


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    for case in cases:
        print(json.dumps(asyncio.run(run(case))))


main()
