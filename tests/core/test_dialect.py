"""How requests are spelled for today's service and for the seed's v1 (both runtimes)."""

import unittest

from fakes import API, Clock, FakeDriver, json_response
from tonecore.auth import OtpSignIn
from tonecore.client import Client
from tonecore.dialect import CURRENT, V1, dialect_named
from tonecore.errors import UsageError
from tonecore.records import Model, Pager
from tonecore.session import Session, Tokens
from tonecore.urls import parse_query, split_url


class Recorder:
    def __init__(self):
        self.queries = []

    def __call__(self, request):
        url = split_url(request.url)
        self.queries.append((url.path, parse_query(url.query)))
        item = {"id": 5, "name": "m", "title": "t", "model_url": "https://h/m.nam", "architecture_version": "2"}
        return json_response(200, {"data": [item], "page": 1, "page_size": 100, "total": 1, "total_pages": 1})


def client_for(dialect):
    clock = Clock()
    session = Session(OtpSignIn(API, None), Tokens("a", "r", 3600, clock() + 3600000))
    recorder = Recorder()
    return Client(API, session, clock, dialect=dialect), FakeDriver(recorder, clock), recorder


class DialectTest(unittest.TestCase):
    def test_today_spells_snake_case_and_asks_per_architecture(self):
        client, driver, seen = client_for(CURRENT)
        page = driver.run(client.models_page(3, Pager(100), "2"))
        self.assertEqual(seen.queries[-1], ("/api/v1/models",
                                            {"tone_id": "3", "page": "1", "page_size": "100", "architecture": "2"}))
        self.assertEqual(page.items[0].architecture_version, "2")
        driver.run(client.tones_page("downloaded", Pager(10)))
        self.assertEqual(seen.queries[-1], ("/api/v1/tones/downloaded", {"page": "1", "page_size": "10"}))

    def test_the_seed_spells_camel_case_and_has_no_architecture(self):
        client, driver, seen = client_for(V1)
        driver.run(client.models_page(3, Pager(100), "2"))
        self.assertEqual(seen.queries[-1], ("/api/v1/models", {"toneId": "3", "page": "1", "pageSize": "100"}))
        with self.assertRaises(ValueError):
            driver.run(client.tones_page("downloaded", Pager(10)))

    def test_names(self):
        self.assertIs(dialect_named(None), CURRENT)
        self.assertIs(dialect_named("v1"), V1)
        with self.assertRaises(UsageError):
            dialect_named("v2")
        self.assertIsNone(Model({"id": 1, "name": "n", "model_url": "https://h/x.wav"}).architecture_version)
