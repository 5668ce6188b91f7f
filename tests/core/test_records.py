import unittest

from tonecore.errors import ProtocolError
from tonecore.records import LICENSES, Model, Page, Pager, Tone, User

TONE = {
    "id": 42,
    "user_id": "u-1",
    "user": {"id": "u-1", "username": "ampnerd", "avatar_url": None, "url": "https://www.tone3000.com/ampnerd"},
    "created_at": "2025-01-01T00:00:00Z",
    "updated_at": "2025-02-01T00:00:00Z",
    "title": "Plexi Crunch",
    "description": None,
    "gear": "amp",
    "images": None,
    "is_public": True,
    "links": ["https://example.com"],
    "platform": "nam",
    "license": "cc-by",
    "sizes": ["standard", "nano"],
    "makes": [{"id": 1, "name": "Marshall"}],
    "tags": [{"id": 3, "name": "crunch"}],
    "models_count": 2,
    "downloads_count": 10,
    "favorites_count": 3,
    "url": "https://www.tone3000.com/tones/plexi-crunch-42",
}


class ToneTest(unittest.TestCase):
    def test_parse_full_tone(self):
        tone = Tone(TONE)
        self.assertEqual((tone.id, tone.title, tone.platform, tone.user.username), (42, "Plexi Crunch", "nam", "ampnerd"))
        self.assertEqual(tone.makes, ["Marshall"])
        self.assertTrue(tone.is_known_platform)
        self.assertEqual(tone.to_json()["makes"], ["Marshall"])

    def test_unknown_enum_values_and_extra_fields_are_tolerated(self):
        data = dict(TONE)
        data["platform"] = "neural-dsp-2030"
        data["gear"] = "synth"
        data["brand_new_field"] = {"x": 1}
        tone = Tone(data)
        self.assertEqual(tone.platform, "neural-dsp-2030")
        self.assertFalse(tone.is_known_platform)
        self.assertFalse(tone.is_known_gear)

    def test_format_is_the_new_name_of_platform(self):
        data = dict(TONE)
        del data["platform"]
        data["format"] = "aida-x"
        self.assertEqual(Tone(data).platform, "aida-x")

    def test_minimal_tone(self):
        tone = Tone({"id": 1, "title": "t"})
        self.assertEqual((tone.sizes, tone.makes, tone.user, tone.platform), ([], [], None, None))

    def test_optional_fields_of_the_wrong_type_read_as_none(self):
        tone = Tone({"id": 1, "title": "t", "gear": 5, "is_public": "yes", "sizes": "nano", "makes": [1, {"name": "Fender"}]})
        self.assertEqual((tone.gear, tone.is_public, tone.sizes, tone.makes), (None, None, [], ["Fender"]))

    def test_bad_fields_name_the_field(self):
        for bad, field in (({"title": "t"}, "id"), ({"id": "1", "title": "t"}, "id"), ({"id": True, "title": "t"}, "id"), ({"id": 1, "title": 5}, "title")):
            with self.assertRaises(ProtocolError) as ctx:
                Tone(bad)
            self.assertIn(field, str(ctx.exception))

    def test_every_license_is_known(self):
        self.assertEqual(len(LICENSES), 8)


class ModelTest(unittest.TestCase):
    def test_model_and_filename(self):
        m = Model({"id": 7, "name": "Clean", "model_url": "https://x/api/v1/models/7/download/clean.nam?t=1", "size": "nano", "tone_id": 42})
        self.assertEqual((m.filename, m.size, m.is_known_size), ("clean.nam", "nano", True))

    def test_filename_is_decoded_and_never_a_path(self):
        def name(url):
            return Model({"id": 9, "name": "x", "model_url": url}).filename

        self.assertEqual(name("https://x/files/Deluxe%20Clean%20%231.nam"), "Deluxe Clean #1.nam")
        self.assertEqual(name("https://x/files/a%2Fb.nam#frag"), "a_b.nam")
        self.assertEqual(name("https://x/files/%2E%2E"), "model-9")
        self.assertEqual(name("https://x/files/"), "files")
        self.assertEqual(name("https://x/files/bad%FF.nam"), "bad%FF.nam")

    def test_model_needs_url(self):
        with self.assertRaises(ProtocolError):
            Model({"id": 7, "name": "x"})


class UserTest(unittest.TestCase):
    def test_user(self):
        u = User({"id": "u", "username": "n", "avatar_url": None, "url": "https://x", "bio": None, "links": None, "created_at": "c", "updated_at": "d"})
        self.assertEqual(u.to_json()["username"], "n")


class PageTest(unittest.TestCase):
    def test_seed_names(self):
        page = Page({"data": [TONE], "page": 2, "pageSize": 1, "total": 3, "totalPages": 3}, Tone)
        self.assertEqual((page.page, page.page_size, page.total, page.total_pages, page.items[0].id), (2, 1, 3, 3, 42))

    def test_current_service_names(self):
        page = Page({"data": [], "page": 1, "page_size": 100, "total": 0, "total_pages": 0}, Tone)
        self.assertEqual((page.page_size, page.total_pages), (100, 0))

    def test_not_a_page(self):
        with self.assertRaises(ProtocolError):
            Page({"items": []}, Tone)
        with self.assertRaises(ProtocolError):
            Page([], Tone)

    def test_pager_bounds(self):
        with self.assertRaises(ValueError):
            Pager(101)
        with self.assertRaises(ValueError):
            Pager(0)
        self.assertEqual(Pager().query(), [("page", 1), ("page_size", 100)])
        self.assertEqual(Pager().query("pageSize"), [("page", 1), ("pageSize", 100)])
