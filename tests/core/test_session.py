import unittest

from tonecore.errors import ProtocolError
from tonecore.session import Tokens


def tokens(expires_in=3600, now_ms=0):
    return Tokens.from_session({"access_token": "a", "refresh_token": "r", "expires_in": expires_in, "token_type": "bearer"}, now_ms)


class RefreshDueTest(unittest.TestCase):
    def test_ten_percent_margin_for_long_lived_tokens(self):
        t = tokens(3600)
        self.assertFalse(t.refresh_due(3600000 - 360000))  # exactly 10 % left: not yet
        self.assertTrue(t.refresh_due(3600000 - 359999))

    def test_sixty_second_floor_for_short_lived_tokens(self):
        t = tokens(300)
        self.assertFalse(t.refresh_due(240000))
        self.assertTrue(t.refresh_due(240001))

    def test_expired_token_is_due(self):
        self.assertTrue(tokens(3600).refresh_due(5000000))

    def test_float_expires_in_is_accepted(self):
        self.assertEqual(Tokens.from_session({"access_token": "a", "refresh_token": "r", "expires_in": 60.0}, 0).lifetime_s, 60)

    def test_token_type_must_be_bearer(self):
        with self.assertRaises(ProtocolError):
            Tokens.from_session({"access_token": "a", "refresh_token": "r", "expires_in": 1, "token_type": "mac"}, 0)

    def test_repr_hides_secrets(self):
        t = Tokens.from_session({"access_token": "SECRET-A", "refresh_token": "SECRET-R", "expires_in": 1}, 0)
        self.assertNotIn("SECRET", repr(t))


class RecordTest(unittest.TestCase):
    def test_round_trip_keeps_remaining_life_across_clocks(self):
        t = tokens(3600, now_ms=10000)
        record = t.to_record(now_ms=70000, wall_s=1700000000)  # 60 s used
        self.assertEqual(record["expires_at"], 1700000000 + 3540)
        back = Tokens.from_record(record, now_ms=5, wall_s=1700000000 + 540)  # other process, 9 min later
        self.assertEqual(back.remaining_ms(5), 3000 * 1000)
        self.assertEqual((back.access_token, back.refresh_token, back.lifetime_s), ("a", "r", 3600))

    def test_unknown_wall_clock_means_refresh_first(self):
        record = tokens(3600).to_record(0, 1700000000)
        self.assertTrue(Tokens.from_record(record, 0, None).refresh_due(0))

    def test_damaged_record(self):
        for bad in ({}, {"access_token": 1, "refresh_token": "r"}, None, {"access_token": "a", "refresh_token": "r", "expires_in": "x"}):
            with self.assertRaises(ProtocolError):
                Tokens.from_record(bad, 0, 0)
