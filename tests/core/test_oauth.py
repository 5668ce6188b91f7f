"""Today's sign-in, part 1: authorization code with PKCE (RFC 7636), on both runtimes."""

import unittest

from fakes import API, Clock, FakeDriver, json_response
from tonecore.client import Client
from tonecore.errors import SignInError, UsageError
from tonecore.oauth import PkceSignIn, b64url, challenge_of, new_state, new_verifier, oauth_error
from tonecore.session import Session
from tonecore.urls import parse_query, split_url

CLIENT_ID = "t3k_pub_test"
REDIRECT = "http://192.168.1.20:8080/cb"


def form(request):
    return parse_query(request.body.decode())


def token_response(n):
    return json_response(200, {"access_token": "acc%d" % n, "refresh_token": "ref%d" % n, "expires_in": 3600,
                               "token_type": "bearer"})


class PkceTest(unittest.TestCase):
    def test_rfc7636_appendix_b_vector(self):
        self.assertEqual(challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                         "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")

    def test_fresh_verifiers_and_states_are_random_and_url_safe(self):
        verifiers = [new_verifier() for _ in range(5)]
        self.assertEqual(len(set(verifiers)), 5)
        for value in verifiers + [new_state()]:
            for char in value:
                self.assertTrue(char.isalpha() or char.isdigit() or char in "-_", value)
        self.assertEqual(len(verifiers[0]), 43)
        self.assertEqual(b64url(b"\xfb\xff"), "-_8")

    def test_authorize_url_carries_challenge_and_state_not_verifier(self):
        flow = PkceSignIn(API, CLIENT_ID, REDIRECT, verifier="v" * 43, state="s1")
        url = split_url(flow.start_url())
        self.assertEqual(url.path, "/api/v1/oauth/authorize")
        query = parse_query(url.query)
        self.assertEqual(query["client_id"], CLIENT_ID)
        self.assertEqual(query["redirect_uri"], REDIRECT)
        self.assertEqual(query["response_type"], "code")
        self.assertEqual(query["code_challenge_method"], "S256")
        self.assertEqual(query["code_challenge"], challenge_of("v" * 43))
        self.assertEqual(query["state"], "s1")
        self.assertNotIn("v" * 43, flow.start_url())

    def test_exchange_is_form_encoded_with_verifier_and_same_redirect(self):
        flow = PkceSignIn(API, CLIENT_ID, REDIRECT, verifier="v" * 43, state="s1")
        request = flow.exchange_request(REDIRECT + "?code=C1&state=s1")
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.url, API + "/oauth/token")
        self.assertEqual(request.headers["content-type"], "application/x-www-form-urlencoded")
        self.assertEqual(form(request), {"grant_type": "authorization_code", "code": "C1", "code_verifier": "v" * 43,
                                         "redirect_uri": REDIRECT, "client_id": CLIENT_ID})

    def test_state_mismatch_error_and_cancel_are_refused(self):
        flow = PkceSignIn(API, CLIENT_ID, REDIRECT, state="mine")
        for callback, words in ((REDIRECT + "?code=C&state=theirs", "state"), ({"code": "C"}, "state"),
                                (REDIRECT + "?error=access_denied&state=mine", "declined"),
                                (REDIRECT + "?error=server_error&error_description=boom", "boom"),
                                (REDIRECT + "?canceled=true", "cancelled"), ({"state": "mine"}, "no code")):
            with self.assertRaises(SignInError) as caught:
                flow.exchange_request(callback)
            self.assertIn(words, str(caught.exception))

    def test_missing_or_odd_client_id_says_where_to_get_one(self):
        for bad in (None, "", "  ", "a b", "x&y=1"):
            with self.assertRaises(UsageError) as caught:
                PkceSignIn(API, bad, REDIRECT)
            if not bad or not bad.strip():
                self.assertIn("API Keys", str(caught.exception))

    def test_refresh_is_form_encoded_and_refusals_end_in_sign_in_error(self):
        flow = PkceSignIn(API, CLIENT_ID, REDIRECT)
        tokens = flow.parse_tokens(token_response(1), 0)
        self.assertEqual(form(flow.refresh_request(tokens)),
                         {"grant_type": "refresh_token", "refresh_token": "ref1", "client_id": CLIENT_ID})
        for body in ({"error": "invalid_grant", "error_description": "reused"},
                     {"code": 400, "error_code": "refresh_token_not_found", "msg": "gone"}):
            with self.assertRaises(SignInError) as caught:
                flow.parse_tokens(json_response(400, body), 0)
            self.assertIn("invalid_grant" if "error" in body else "refresh_token_not_found", str(caught.exception))
        with self.assertRaises(SignInError) as caught:
            flow.parse_tokens(json_response(401, {"error": "invalid_client"}), 0)
        self.assertIn("client id", str(caught.exception))

    def test_oauth_error_reads_both_shapes(self):
        self.assertEqual(oauth_error(json_response(400, {"error": "slow_down"})), ("slow_down", None))
        self.assertEqual(oauth_error(json_response(400, {"code": 400, "error_code": "x", "msg": "m"})), ("x", "m"))
        self.assertEqual(oauth_error(json_response(400, [1])), (None, None))

    def test_sign_in_through_the_client_persists_before_use(self):
        clock = Clock()
        flow = PkceSignIn(API, CLIENT_ID, REDIRECT, state="s1")
        seen = []

        def handler(request):
            seen.append(form(request))
            return token_response(1)

        client = Client(API, Session(flow), clock)
        driver = FakeDriver(handler, clock)
        driver.run(client.sign_in(REDIRECT + "?code=C1&state=s1"))
        self.assertEqual(driver.events[-1], ("persist", "ref1"))
        self.assertEqual(seen[0]["code_verifier"], flow.verifier)
