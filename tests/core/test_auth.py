import unittest

from fakes import API
from tonecore.auth import OtpSignIn, api_key_from_callback
from tonecore.compat import json
from tonecore.errors import ApiError, ProtocolError, SignInError, UsageError
from tonecore.http import Response


def session_response(status, data):
    return Response(status, {"content-type": "application/json"}, json.dumps(data).encode(), API)


class StartUrlTest(unittest.TestCase):
    def test_otp_only_url_is_percent_encoded(self):
        flow = OtpSignIn(API + "/", "http://192.168.4.1/callback?x=1&y=a b")
        self.assertEqual(
            flow.start_url(),
            API + "/auth?redirect_url=http%3A%2F%2F192.168.4.1%2Fcallback%3Fx%3D1%26y%3Da%20b&otp_only=true",
        )

    def test_magic_link_variant_has_no_otp_only(self):
        self.assertNotIn("otp_only", OtpSignIn(API, "http://h/cb", otp_only=False).start_url())

    def test_bad_urls_are_refused_early(self):
        with self.assertRaises(UsageError):
            OtpSignIn("tone3000.com", "http://h/cb")
        with self.assertRaises(UsageError):
            OtpSignIn(API, "javascript:alert(1)")


class CallbackTest(unittest.TestCase):
    def test_api_key_from_url_query_dict_and_bare_key(self):
        self.assertEqual(api_key_from_callback("http://127.0.0.1:5/callback?api_key=abc%2B1&x=2"), "abc+1")
        self.assertEqual(api_key_from_callback("api_key=k2"), "k2")
        self.assertEqual(api_key_from_callback({"api_key": "k3"}), "k3")
        self.assertEqual(api_key_from_callback("  k4  "), "k4")

    def test_error_callback(self):
        with self.assertRaises(SignInError) as ctx:
            api_key_from_callback("http://h/cb?error=access_denied&error_description=cancelled")
        self.assertIn("access_denied", str(ctx.exception))
        self.assertIn("cancelled", str(ctx.exception))

    def test_missing_key(self):
        with self.assertRaises(SignInError):
            api_key_from_callback("http://h/cb?state=1")
        with self.assertRaises(SignInError):
            api_key_from_callback("not a key")


class ExchangeTest(unittest.TestCase):
    def setUp(self):
        self.flow = OtpSignIn(API, "http://h/cb")

    def test_exchange_request_matches_the_seed(self):
        request = self.flow.exchange_request("http://h/cb?api_key=KEY")
        self.assertEqual((request.method, request.url), ("POST", API + "/auth/session"))
        self.assertEqual(json.loads(request.body), {"api_key": "KEY"})
        self.assertEqual(request.headers["content-type"], "application/json")

    def test_refresh_request_matches_the_seed(self):
        tokens = self.flow.parse_tokens(
            session_response(200, {"access_token": "a", "refresh_token": "r", "expires_in": 3600, "token_type": "bearer"}), 0
        )
        request = self.flow.refresh_request(tokens)
        self.assertEqual(request.url, API + "/auth/session/refresh")
        self.assertEqual(json.loads(request.body), {"refresh_token": "r", "access_token": "a"})

    def test_refused_key_is_a_sign_in_error_with_the_server_message(self):
        with self.assertRaises(SignInError) as ctx:
            self.flow.parse_tokens(session_response(401, {"error": "x", "message": "api key expired"}), 0)
        self.assertIn("api key expired", str(ctx.exception))

    def test_server_failure_is_an_api_error(self):
        with self.assertRaises(ApiError) as ctx:
            self.flow.parse_tokens(session_response(500, {}), 0)
        self.assertEqual(ctx.exception.status, 500)

    def test_malformed_session(self):
        for body in ({"access_token": "a"}, {"access_token": "a", "refresh_token": "r", "expires_in": "soon"}, [1]):
            with self.assertRaises(ProtocolError):
                self.flow.parse_tokens(session_response(200, body), 0)
        with self.assertRaises(ProtocolError):
            self.flow.parse_tokens(Response(200, {}, b"<html>", API), 0)
