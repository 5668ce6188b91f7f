"""The call policy: refresh by time and on 401, single refresh, failure, pacing, 429."""

import unittest

from fakes import API, Clock, FakeApi, FakeDriver, json_response, signed_in
from tonecore.auth import OtpSignIn
from tonecore.client import Client, Wait
from tonecore.errors import NotFound, RateLimited, SignInError, SignInRequired
from tonecore.http import Request
from tonecore.ratelimit import RateLimiter
from tonecore.records import Pager
from tonecore.session import Session


def sends(driver, path):
    return [e for e in driver.events if e[0] == "send" and e[1] == path]


class SignInTest(unittest.TestCase):
    def test_sign_in_persists_then_uses_tokens(self):
        clock, api, client, driver = signed_in()
        self.assertEqual(driver.events[-1], ("persist", "ref1"))
        self.assertTrue(client.session.signed_in)
        user = driver.run(client.user())
        self.assertEqual(user.username, "demo")
        self.assertEqual(driver.events[-1], ("send", "/api/v1/user", "Bearer acc1"))

    def test_used_key_is_refused(self):
        clock, api, client, driver = signed_in()
        with self.assertRaises(SignInError):
            driver.run(client.sign_in("KEY1"))

    def test_calls_without_session_need_sign_in(self):
        clock = Clock()
        client = Client(API, Session(OtpSignIn(API, "http://h/cb")), clock)
        driver = FakeDriver(FakeApi(clock).handle)
        with self.assertRaises(SignInRequired):
            driver.run(client.user())
        self.assertEqual(driver.events, [])


class RefreshTest(unittest.TestCase):
    def test_refresh_before_expiry(self):
        clock, api, client, driver = signed_in(ttl_s=3600)
        clock.advance((3600 - 300) * 1000)  # 5 min left < 10 % of an hour
        driver.run(client.user())
        self.assertEqual(api.refresh_calls, 1)
        self.assertEqual(sends(driver, "/api/v1/user")[-1][2], "Bearer acc2")

    def test_no_refresh_while_enough_life_remains(self):
        clock, api, client, driver = signed_in(ttl_s=3600)
        clock.advance(3000 * 1000)
        driver.run(client.user())
        self.assertEqual(api.refresh_calls, 0)

    def test_refresh_on_401_then_retry_once(self):
        clock, api, client, driver = signed_in()
        api.access.clear()  # the server revoked the access token early
        self.assertEqual(driver.run(client.user()).username, "demo")
        self.assertEqual(api.refresh_calls, 1)
        self.assertEqual([e[2] for e in sends(driver, "/api/v1/user")], ["Bearer acc1", "Bearer acc2"])

    def test_second_401_is_an_error_not_a_loop(self):
        clock, api, client, driver = signed_in()
        api.reject_all_tokens = True
        with self.assertRaises(SignInRequired):
            driver.run(client.user())
        self.assertEqual(api.refresh_calls, 1)
        self.assertEqual(len(sends(driver, "/api/v1/user")), 2)
        self.assertFalse(client.session.signed_in)
        self.assertEqual(driver.events[-1], ("persist", None))

    def test_refresh_failure_clears_tokens_and_stops(self):
        clock, api, client, driver = signed_in()
        api.fail_refresh = True
        clock.advance(3600 * 1000)
        with self.assertRaises(SignInRequired) as ctx:
            driver.run(client.user())
        self.assertIn("sign in again", str(ctx.exception))
        self.assertEqual(api.refresh_calls, 1)
        self.assertEqual(sends(driver, "/api/v1/user"), [])
        self.assertEqual(driver.events[-1], ("persist", None))
        with self.assertRaises(SignInRequired):  # and the next call does not try again
            driver.run(client.user())
        self.assertEqual(api.refresh_calls, 1)

    def test_rotated_refresh_token_is_persisted_before_use(self):
        clock, api, client, driver = signed_in()
        clock.advance(3600 * 1000)
        driver.run(client.user())
        persist_at = driver.events.index(("persist", "ref2"))
        use_at = driver.events.index(("send", "/api/v1/user", "Bearer acc2"))
        self.assertLess(persist_at, use_at)
        self.assertNotIn("ref1", api.refresh)  # rotated: the old one is dead
        clock.advance(3600 * 1000)
        driver.run(client.user())  # the persisted new refresh token works
        self.assertEqual(api.refresh_calls, 2)

    def test_refresh_network_failure_keeps_tokens(self):
        from tonecore.errors import TransportError

        clock, api, client, driver = signed_in()
        clock.advance(3600 * 1000)

        def offline(request):
            raise TransportError("network is unreachable")

        driver.handler = offline
        with self.assertRaises(TransportError):
            driver.run(client.user())
        self.assertTrue(client.session.signed_in)
        self.assertFalse(client.session.refreshing)

    def test_abandoned_refresh_releases_the_session(self):
        # Ctrl-C (any BaseException) while the refresh request is in flight: the driver
        # closes the call, so other callers are not left waiting on `refreshing`.
        clock, api, client, driver = signed_in()
        clock.advance(3600 * 1000)

        class Abandon(BaseException):
            pass

        def interrupted(request):
            raise Abandon()

        driver.handler = interrupted
        with self.assertRaises(Abandon):
            driver.run(client.user())
        self.assertFalse(client.session.refreshing)
        self.assertTrue(client.session.signed_in)
        driver.handler = api.handle
        self.assertEqual(driver.run(client.user()).username, "demo")
        self.assertEqual(api.refresh_calls, 1)

    def test_many_interleaved_callers_share_one_refresh(self):
        clock, api, client, driver = signed_in()
        clock.advance(3600 * 1000)
        calls = [client.user() for _ in range(12)]
        pending = [[c, None] for c in calls]
        results = []
        waits = 0
        # A cooperative scheduler: one step of each call in turn; a Wait parks the call
        # until the next round, as an asyncio adapter would.
        while pending:
            still = []
            for item in pending:
                call, value = item
                try:
                    step = call.send(value)
                except StopIteration as stop:
                    results.append(stop.value)
                    continue
                if isinstance(step, Wait):
                    waits += 1
                    item[1] = None
                else:
                    item[1] = driver.perform(step)
                still.append(item)
            pending = still
        self.assertEqual(len(results), 12)
        self.assertEqual(api.refresh_calls, 1)
        self.assertGreater(waits, 0)
        self.assertEqual(client.refresh_count, 1)

    def test_401_after_someone_else_refreshed_just_retries(self):
        clock, api, client, driver = signed_in()
        old = client.session.generation
        call = client.call("GET", API + "/user")
        request = call.send(None)
        driver.run(client._refresh())  # another caller refreshes meanwhile
        self.assertEqual(client.session.generation, old + 1)
        retry = call.send(json_response(401, {}))
        self.assertIsInstance(retry, Request)
        self.assertEqual(retry.headers["authorization"], "Bearer acc2")
        self.assertEqual(api.refresh_calls, 1)
        self.assertEqual(request.headers["authorization"], "Bearer acc1")


class PacingTest(unittest.TestCase):
    def test_limiter_spaces_requests(self):
        clock, api, client, driver = signed_in()
        client.limiter = RateLimiter(limit=3, window_ms=1000, margin_ms=0)
        for _ in range(7):
            driver.run(client.user())
        self.assertEqual(len(driver.slept), 2)
        self.assertTrue(all(ms > 0 for ms in driver.slept))

    def test_only_requests_to_the_api_are_paced(self):
        # The limit is the API's: a hop to file storage on another origin is not counted.
        clock, api, client, driver = signed_in()
        client.limiter = RateLimiter(limit=2, window_ms=60000, margin_ms=0)
        hop = json_response(302, {}, {"location": "https://storage.example.net/f.json?sig=1"})
        for _ in range(2):
            api.queued = [hop, json_response(200, {"id": "u1", "username": "demo"})]
            self.assertEqual(driver.run(client.user()).username, "demo")
        self.assertEqual(driver.slept, [])  # two API requests: within the limit
        driver.run(client.user())  # the third API request must wait
        self.assertEqual(len(driver.slept), 1)

    def test_429_retry_after_is_honoured(self):
        clock, api, client, driver = signed_in()
        client.limiter = RateLimiter()
        api.queued = [json_response(429, {"error": "rate_limited"}, {"retry-after": "7"})]
        self.assertEqual(driver.run(client.user()).username, "demo")
        self.assertIn(7000, driver.slept)

    def test_429_forever_gives_up_with_retry_after(self):
        clock, api, client, driver = signed_in()
        api.queued = [json_response(429, {}, {"retry-after": "2"}) for _ in range(10)]
        with self.assertRaises(RateLimited) as ctx:
            driver.run(client.user())
        self.assertEqual(ctx.exception.retry_after_s, 2)
        self.assertEqual(len(sends(driver, "/api/v1/user")), client.max_429_retries + 1)

    def test_503_is_retried_for_get(self):
        clock, api, client, driver = signed_in()
        api.queued = [json_response(503, {}, {"retry-after": "1"})]
        self.assertEqual(driver.run(client.user()).username, "demo")
        self.assertEqual(driver.slept, [1000])

    def test_404_maps_to_not_found_with_message(self):
        clock, api, client, driver = signed_in()
        with self.assertRaises(NotFound) as ctx:
            driver.run(client.get_json("/nope", None, "tone 9"))
        self.assertIn("tone 9", str(ctx.exception))
        self.assertIn("no such thing", str(ctx.exception))


class PaginationTest(unittest.TestCase):
    def walk_ids(self, client, driver, page_size=100):
        """Page by page, keeping only ids: how the pedal walks a long list."""
        pager = Pager(page_size)
        ids = []
        while not pager.done:
            ids.extend(t.id for t in driver.run(client.tones_page("favorited", pager)).items)
        return ids, pager

    def test_walks_all_pages_with_fewest_requests(self):
        # Pages of 25: what a pedal can hold (a page of 50 tones is ~30 KB of dicts on
        # the 64-bit unix port, too much beside the core in a 128k heap).
        clock, api, client, driver = signed_in(favorites=125)
        ids, pager = self.walk_ids(client, driver, page_size=25)
        self.assertEqual(ids, list(range(1, 126)))
        self.assertEqual(len(sends(driver, "/api/v1/tones/favorited")), 5)
        self.assertEqual(pager.total, 125)

    def test_exact_multiple_does_not_ask_for_an_empty_page(self):
        clock, api, client, driver = signed_in(favorites=100)
        self.assertEqual(len(self.walk_ids(client, driver, page_size=50)[0]), 100)
        self.assertEqual(len(sends(driver, "/api/v1/tones/favorited")), 2)

    def test_asks_for_the_largest_page_by_default(self):
        clock, api, client, driver = signed_in(favorites=3)
        driver.run(client.all_tones("favorited"))
        request = [e for e in driver.events if e[0] == "send"][-1]
        self.assertEqual(len(sends(driver, "/api/v1/tones/favorited")), 1)
        self.assertIn(("page", 1), Pager().query())
        self.assertIn(("pageSize", 100), Pager().query("pageSize"))
        self.assertEqual(request[1], "/api/v1/tones/favorited")

    def test_without_totals_stops_at_short_page(self):
        clock, api, client, driver = signed_in(favorites=23, include_totals=False)
        tones = driver.run(client.all_tones("favorited", page_size=10))
        self.assertEqual(len(tones), 23)
        self.assertEqual(len(sends(driver, "/api/v1/tones/favorited")), 3)

    def test_small_pages_many_requests(self):
        clock, api, client, driver = signed_in(favorites=45)
        ids, pager = self.walk_ids(client, driver, page_size=5)
        self.assertEqual(ids, list(range(1, 46)))
        self.assertEqual(len(sends(driver, "/api/v1/tones/favorited")), 9)

    def test_empty_list(self):
        clock, api, client, driver = signed_in(favorites=0)
        self.assertEqual(driver.run(client.all_tones("favorited")), [])
        self.assertEqual(len(sends(driver, "/api/v1/tones/favorited")), 1)
