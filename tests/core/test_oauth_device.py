"""Today's sign-in, part 2: the device authorization grant (RFC 8628), on both runtimes."""

import unittest

from fakes import API, Clock, FakeDriver, json_response
from tonecore.client import Client
from tonecore.errors import SignInError, SignInRequired
from tonecore.oauth import DeviceSignIn, device_authorize, device_sign_in
from tonecore.session import Session
from tonecore.urls import parse_query

CLIENT_ID = "t3k_pub_test"


def form(request):
    return parse_query(request.body.decode())


def token_response(n):
    return json_response(200, {"access_token": "acc%d" % n, "refresh_token": "ref%d" % n, "expires_in": 3600,
                               "token_type": "bearer"})


class DeviceFlowTest(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.flow = DeviceSignIn(API, CLIENT_ID)
        self.client = Client(API, Session(self.flow), self.clock)
        self.polls = []
        self.answers = []
        self.expires_in = 600

    def handler(self, request):
        fields = form(request)
        if request.url.endswith("/oauth/device_authorization"):
            self.assertEqual(fields, {"client_id": CLIENT_ID})
            return json_response(200, {"device_code": "DEV", "user_code": "BCDF-GHJK",
                                       "verification_uri": "https://www.tone3000.com/activate",
                                       "verification_uri_complete": "https://www.tone3000.com/activate?code=BCDF-GHJK",
                                       "expires_in": self.expires_in, "interval": 5})
        self.assertEqual(fields["grant_type"], "urn:ietf:params:oauth:grant-type:device_code")
        self.assertEqual(fields["device_code"], "DEV")
        self.polls.append(self.clock())
        answer = self.answers.pop(0) if self.answers else "pending"  # then pending for ever
        if answer == "ok":
            return token_response(7)
        return json_response(400, {"error": {"pending": "authorization_pending"}.get(answer, answer)})

    def run_flow(self):
        driver = FakeDriver(self.handler, self.clock)
        grant = driver.run(device_authorize(self.client, self.flow))
        self.assertEqual(grant.user_code, "BCDF-GHJK")
        self.assertNotIn("DEV", repr(grant))
        return driver, grant, driver.run(device_sign_in(self.client, self.flow, grant))

    def test_pending_then_approved_polls_at_the_interval(self):
        self.answers = ["pending", "pending", "ok"]
        driver, grant, tokens = self.run_flow()
        self.assertEqual(tokens.refresh_token, "ref7")
        self.assertEqual(driver.slept, [5000, 5000, 5000])
        self.assertEqual(driver.events[-1], ("persist", "ref7"))
        self.assertTrue(self.client.session.signed_in)

    def test_slow_down_adds_five_seconds(self):
        self.answers = ["slow_down", "pending", "ok"]
        driver, grant, tokens = self.run_flow()
        self.assertEqual(driver.slept, [5000, 10000, 10000])

    def test_denied_and_expired_end_cleanly_with_nothing_stored(self):
        for answer, words in (("access_denied", "declined"), ("expired_token", "expired")):
            self.setUp()
            self.answers = ["pending", answer]
            with self.assertRaises(SignInError) as caught:
                self.run_flow()
            self.assertIn(words, str(caught.exception))
            self.assertFalse(self.client.session.signed_in)

    def test_gives_up_when_the_grant_runs_out_without_an_answer(self):
        self.expires_in = 60
        with self.assertRaises(SignInError) as caught:
            self.run_flow()
        self.assertIn("expired", str(caught.exception))
        self.assertEqual(len(self.polls), 11)  # every 5 s, none after the grant ran out
        self.assertLess(self.polls[-1], self.polls[0] + 60 * 1000)

    def test_refresh_of_a_device_session_uses_the_token_endpoint(self):
        self.answers = ["ok"]
        self.run_flow()
        request = self.flow.refresh_request(self.client.session.tokens)
        self.assertEqual(form(request)["grant_type"], "refresh_token")
        with self.assertRaises(SignInRequired):
            self.client.session.clear()
            FakeDriver(self.handler, self.clock).run(self.client.user())
