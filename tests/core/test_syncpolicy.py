"""The sync policy the pedal's Wi-Fi sync and `tonebridge pedal sync` share: the sources
(favorited and created tones, each once), the board filter, the needs-update rule."""

import unittest

from fakes import json_response, signed_in
from tonecore.records import Model
from tonecore.syncpolicy import INSTALL, SKIP, SOURCES, UP_TO_DATE, SyncPolicy
from tonecore.urls import parse_query, split_url

PLATFORM = {1: "nam", 2: "ir", 3: "aida-x", 4: "nam", 5: "proteus", 6: "ir", 7: "nam"}
LISTS = {"favorited": [1, 2, 3, 4, 5], "created": [4, 5, 6, 7]}  # 4 and 5 are in both
BOARD = {"nam": ("nano",), "ir": "*"}  # an ESP32-C3


def listing(fallback):
    """A handler serving /tones/favorited and /tones/created from LISTS, page by page."""

    def handle(request):
        url = split_url(request.url)
        which = url.path.rsplit("/", 1)[-1]
        if not url.path.startswith("/api/v1/tones/") or which not in LISTS:
            return fallback(request)
        query = parse_query(url.query)
        page, size = int(query["page"]), int(query["pageSize"])
        ids = LISTS[which]
        items = [{"id": i, "title": "Tone %d" % i, "platform": PLATFORM[i]} for i in ids[(page - 1) * size:page * size]]
        return json_response(200, {"data": items, "page": page, "pageSize": size, "total": len(ids),
                                   "totalPages": (len(ids) + size - 1) // size})

    return handle


def model(size, updated_at="2026-02-01T00:00:00Z"):
    return Model({"id": 9, "name": "m", "model_url": "https://x/m.nam", "size": size, "updated_at": updated_at})


class TonesTest(unittest.TestCase):
    def walk(self, formats):
        clock, api, client, driver = signed_in()
        driver.handler = listing(api.handle)
        pages = []
        pairs = driver.run(SyncPolicy(formats).tones(client, 2, lambda: pages.append(1)))
        return pairs, len(pages), driver

    def test_favorited_and_created_tones_the_board_runs_each_once(self):
        pairs, pages, driver = self.walk(BOARD)
        self.assertEqual(pairs, [(1, "nam"), (2, "ir"), (4, "nam"), (6, "ir"), (7, "nam")])
        self.assertEqual(pages, 3 + 2)  # five favorited and four created, two a page
        listed = [e[1] for e in driver.events if e[0] == "send" and "/tones/" in e[1]]
        self.assertEqual(listed, ["/api/v1/tones/" + SOURCES[0]] * 3 + ["/api/v1/tones/" + SOURCES[1]] * 2)

    def test_a_board_of_unknown_facts_takes_every_tone(self):
        pairs, _, _ = self.walk(None)
        self.assertEqual([tone_id for tone_id, _ in pairs], [1, 2, 3, 4, 5, 6, 7])

    def test_the_sources_are_favorited_and_created(self):
        self.assertEqual(sorted(SOURCES), ["created", "favorited"])


class DecideTest(unittest.TestCase):
    def test_the_board_filter(self):
        policy = SyncPolicy(BOARD, 512 * 1024)
        self.assertEqual(policy.decide("nam", model("standard"), None), SKIP)
        self.assertEqual(policy.decide("aida-x", model("nano"), None), SKIP)
        self.assertEqual(policy.decide("nam", model("nano"), None), INSTALL)
        self.assertEqual(policy.decide("ir", model("standard"), None), INSTALL)
        self.assertTrue(policy.fits(512 * 1024))
        self.assertFalse(policy.fits(512 * 1024 + 1))
        self.assertTrue(SyncPolicy(None).runs("proteus", "custom") and SyncPolicy(None).fits(10 ** 9))

    def test_needs_update_by_updated_at(self):
        policy = SyncPolicy(BOARD)
        self.assertEqual(policy.decide("ir", model("standard"), "2026-02-01T00:00:00Z"), UP_TO_DATE)
        self.assertEqual(policy.decide("ir", model("standard"), "2026-01-01T00:00:00Z"), INSTALL)  # changed
        self.assertEqual(policy.decide("ir", model("standard"), None), INSTALL)  # missing
        self.assertEqual(policy.decide("ir", model("standard", None), ""), UP_TO_DATE)  # neither side says
        self.assertEqual(policy.decide("ir", model("standard", None), "2026-02-01T00:00:00Z"), INSTALL)


class ArchitectureTest(unittest.TestCase):
    def test_a2_is_asked_for_only_where_the_board_runs_it_and_the_service_knows_it(self):
        from tonecore.dialect import CURRENT as TODAY, V1

        a1_board = SyncPolicy(BOARD)
        s3 = SyncPolicy(BOARD, None, ("1", "2", "custom"))
        self.assertEqual(a1_board.listings("nam", TODAY), (None,))
        self.assertEqual(s3.listings("nam", TODAY), (None, "2"))
        self.assertEqual(s3.listings("ir", TODAY), (None,))
        self.assertEqual(s3.listings("nam", V1), (None,))

    def test_a_model_of_an_architecture_the_board_lacks_is_skipped(self):
        a1_board = SyncPolicy({"nam": "*"})
        a2 = Model({"id": 9, "name": "m", "model_url": "https://x/m.nam", "size": "nano",
                    "architecture_version": "2", "updated_at": "u"})
        a1 = Model({"id": 8, "name": "m", "model_url": "https://x/m.nam", "size": "nano",
                    "architecture_version": "1", "updated_at": "u"})
        self.assertEqual(a1_board.decide("nam", a2, None), SKIP)
        self.assertEqual(a1_board.decide("nam", a1, None), INSTALL)
        self.assertEqual(SyncPolicy({"nam": "*"}, None, ("1", "2")).decide("nam", a2, None), INSTALL)


class SourcesTest(unittest.TestCase):
    def test_downloaded_is_an_optional_source(self):
        self.assertEqual(SyncPolicy(BOARD).sources, ("favorited", "created"))
        self.assertEqual(SyncPolicy(BOARD, downloaded=True).sources, ("favorited", "created", "downloaded"))
