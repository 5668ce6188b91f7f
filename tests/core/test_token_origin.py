"""The token goes to the API's own origin only (both runtimes)."""

import unittest

from fakes import API, Clock, FakeDriver
from tonecore.auth import OtpSignIn
from tonecore.client import Client
from tonecore.http import Response
from tonecore.session import Session, Tokens


class ForeignModelUrlTest(unittest.TestCase):
    """A model_url on another origin never gets the token (issue: a server named
    http://attacker/... as model_url and received `Authorization: Bearer …`)."""

    def test_the_token_goes_to_the_api_origin_only(self):
        clock = Clock()
        client = Client(API, Session(OtpSignIn(API, None), Tokens("acc", "ref", 3600, clock() + 3600000)), clock)
        seen = []

        def handler(request):
            seen.append((request.url, request.headers.get("authorization")))
            return Response(200, {}, b"{}", request.url)

        driver = FakeDriver(handler, clock)
        for url in (API + "/models/1/download/a.nam", "http://api.example/api/v1/models/1/download/a.nam",
                    "https://api.example:8443/x.nam", "https://evil.example/x.nam", "not a url"):
            try:
                driver.run(client.call("GET", url))
            except Exception:
                pass
        self.assertEqual(seen[0], (API + "/models/1/download/a.nam", "Bearer acc"))
        self.assertEqual([auth for _, auth in seen[1:]], [None] * (len(seen) - 1))
