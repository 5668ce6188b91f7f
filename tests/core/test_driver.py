"""The Driver: one stepping loop for every adapter, blocking (`run`, the host's httpx)
or asyncio (`run_async`, the pedal's sockets).  The blocking form is exercised by every
other core test; here the same calls run with coroutine steps."""

import unittest

from fakes import FakeDriver, MemorySink, signed_in
from tonecore.download import DownloadPlan


class Turn:
    """Awaitable: suspends the coroutine once, as a real event loop's I/O wait does."""

    def __await__(self):
        yield

    __iter__ = __await__  # MicroPython awaits through __iter__


def run_loop(coro):
    """A minimal event loop for one coroutine: (its result, how often it suspended)."""
    turns = 0
    while True:
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value, turns
        turns += 1


class AsyncDriver(FakeDriver):
    """FakeDriver's steps as coroutines that suspend first, as the pedal's asyncio driver
    (firmware/pedal/net.py) does: the same Driver steps them, with run_async."""

    async def send(self, request):
        await Turn()
        return FakeDriver.send(self, request)

    async def sleep_ms(self, ms):
        FakeDriver.sleep_ms(self, ms)

    async def persist(self, tokens):
        FakeDriver.persist(self, tokens)

    async def stream_body(self, step):
        await Turn()
        FakeDriver.stream_body(self, step)


class AsyncDriverTest(unittest.TestCase):
    def setUp(self):
        self.clock, self.api, self.client, blocking = signed_in()
        self.driver = AsyncDriver(self.api.handle, self.clock)

    def test_runs_a_call_with_coroutine_steps(self):
        user, turns = run_loop(self.driver.run_async(self.client.user()))
        self.assertEqual((user.username, turns), ("demo", 1))
        self.assertEqual(self.driver.events, [("send", "/api/v1/user", "Bearer acc1")])

    def test_failed_steps_are_thrown_into_the_call_which_retries(self):
        data = b'{"version": "1", "architecture": "A", "config": {}, "weights": [' + b"5" * 2000 + b']}'
        self.api.files["/files/m.nam"] = data
        self.api.cuts = [700, 600]  # two bodies cut: TransportError from the body step
        plan = DownloadPlan("https://api.example/files/m.nam", "m.nam")
        sink = MemorySink()
        sha, turns = run_loop(self.driver.run_async(self.client.download(plan, sink)))
        self.assertEqual((sha, plan.retries, turns), (sink.digest(), 2, 6))  # 3 requests, 3 bodies
        self.assertEqual(self.driver.slept, [250, 250])  # progress each time: the backoff starts over

    def test_an_abandoned_call_is_closed_and_releases_the_session(self):
        self.clock.advance(3600 * 1000)  # the next call refreshes first

        class Abandon(BaseException):
            pass

        def interrupted(request):
            raise Abandon()

        self.driver.handler = interrupted
        with self.assertRaises(Abandon):
            run_loop(self.driver.run_async(self.client.user()))
        self.assertFalse(self.client.session.refreshing)
        self.driver.handler = self.api.handle
        self.assertEqual(run_loop(self.driver.run_async(self.client.user()))[0].username, "demo")
