import unittest

from tonecore.errors import RedirectError
from tonecore.http import Request, Response
from tonecore.redirect import MAX_HOPS, next_request

START = "https://api.example/api/v1/models/1/download/a.nam"


def redirect(status, location):
    return Response(status, {"location": location} if location else {}, b"", START)


def authed(url=START, method="GET", body=None):
    return Request(method, url, {"authorization": "Bearer SECRET", "range": "bytes=10-"}, body)


class RedirectPolicyTest(unittest.TestCase):
    def test_same_origin_keeps_authorization(self):
        nxt = next_request(authed(), redirect(302, "/api/v1/files/a.nam"), 0)
        self.assertEqual(nxt.url, "https://api.example/api/v1/files/a.nam")
        self.assertEqual(nxt.headers["authorization"], "Bearer SECRET")

    def test_cross_origin_drops_authorization_but_keeps_range(self):
        for location in ("https://storage.example/blob/1?sig=x", "https://api.example:8443/x", "//cdn.example/x"):
            nxt = next_request(authed(), redirect(302, location), 0)
            self.assertNotIn("authorization", nxt.headers)
            self.assertEqual(nxt.headers["range"], "bytes=10-")

    def test_authorization_stays_dropped_when_coming_back(self):
        hop1 = next_request(authed(), redirect(302, "https://storage.example/b"), 0)
        hop2 = next_request(hop1, redirect(302, START), 1)
        self.assertNotIn("authorization", hop2.headers)

    def test_https_to_http_is_refused(self):
        with self.assertRaises(RedirectError):
            next_request(authed(), redirect(301, "http://api.example/x"), 0)

    def test_http_to_https_is_fine(self):
        nxt = next_request(authed("http://127.0.0.1:9/a"), redirect(302, "https://127.0.0.1:9/a"), 0)
        self.assertNotIn("authorization", nxt.headers)  # the port/scheme changed: another origin

    def test_hop_limit(self):
        request = authed()
        for hop in range(MAX_HOPS):
            request = next_request(request, redirect(302, "/loop%d" % hop), hop)
        with self.assertRaises(RedirectError) as ctx:
            next_request(request, redirect(302, "/again"), MAX_HOPS)
        self.assertIn("too many redirects", str(ctx.exception))

    def test_missing_location(self):
        with self.assertRaises(RedirectError):
            next_request(authed(), redirect(302, None), 0)

    def test_303_turns_post_into_get(self):
        post = authed(method="POST", body=b"{}")
        post.headers["content-type"] = "application/json"
        nxt = next_request(post, redirect(303, "/done"), 0)
        self.assertEqual((nxt.method, nxt.body), ("GET", None))
        self.assertNotIn("content-type", nxt.headers)

    def test_307_keeps_method_and_body(self):
        nxt = next_request(authed(method="POST", body=b"x"), redirect(307, "/again"), 0)
        self.assertEqual((nxt.method, nxt.body), ("POST", b"x"))
