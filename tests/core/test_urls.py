import unittest

from tonecore.errors import UsageError
from tonecore.urls import add_query, join, parse_query, quote, shown, split_url, unquote, urlencode


class QuoteTest(unittest.TestCase):
    def test_reserved_characters_are_escaped(self):
        self.assertEqual(quote("http://a/b?c=d&e"), "http%3A%2F%2Fa%2Fb%3Fc%3Dd%26e")

    def test_unreserved_characters_stay(self):
        self.assertEqual(quote("AZaz09-._~"), "AZaz09-._~")

    def test_space_and_utf8(self):
        self.assertEqual(quote("a b é"), "a%20b%20%C3%A9")

    def test_safe_characters(self):
        self.assertEqual(quote("/a b/", "/"), "/a%20b/")

    def test_unquote_round_trip(self):
        text = "http://x:1/p?q=1&r=é ü"
        self.assertEqual(unquote(quote(text)), text)

    def test_unquote_plus_only_when_asked(self):
        self.assertEqual(unquote("a+b"), "a+b")
        self.assertEqual(unquote("a+b", True), "a b")

    def test_malformed_escape_is_literal(self):
        self.assertEqual(unquote("100%"), "100%")
        self.assertEqual(unquote("%zz%4"), "%zz%4")


class QueryTest(unittest.TestCase):
    def test_urlencode_pairs_keep_order_and_skip_none(self):
        self.assertEqual(urlencode([("b", 2), ("a", "x y"), ("c", None), ("d", True)]), "b=2&a=x%20y&d=true")

    def test_urlencode_dict_is_sorted(self):
        self.assertEqual(urlencode({"z": 1, "a": 2}), "a=2&z=1")

    def test_parse_query(self):
        self.assertEqual(parse_query("?a=1&b=x+y&c=%2F&d&a=2"), {"a": "2", "b": "x y", "c": "/", "d": ""})

    def test_add_query(self):
        self.assertEqual(add_query("http://h/cb", [("api_key", "k")]), "http://h/cb?api_key=k")
        self.assertEqual(add_query("http://h/cb?x=1#frag", [("api_key", "k")]), "http://h/cb?x=1&api_key=k#frag")


class SplitTest(unittest.TestCase):
    def test_defaults(self):
        u = split_url("HTTPS://Example.COM")
        self.assertEqual((u.scheme, u.host, u.port, u.path, u.query), ("https", "example.com", 443, "/", ""))
        self.assertEqual(str(u), "https://example.com/")

    def test_port_path_query_fragment(self):
        u = split_url("http://127.0.0.1:8080/a/b?x=1#top")
        self.assertEqual((u.host, u.port, u.target), ("127.0.0.1", 8080, "/a/b?x=1"))
        self.assertEqual(u.origin, ("http", "127.0.0.1", 8080))

    def test_query_without_path(self):
        self.assertEqual(split_url("http://h?x=1").target, "/?x=1")

    def test_ipv6(self):
        u = split_url("http://[::1]:9000/x")
        self.assertEqual((u.host, u.port, u.netloc), ("::1", 9000, "[::1]:9000"))

    def test_explicit_default_port_is_same_origin(self):
        self.assertEqual(split_url("https://h:443/a").origin, split_url("https://h/b").origin)

    def test_bad_urls(self):
        for bad in ("ftp://h/", "h/path", "http://", "http://h:99999/", "http://h:x/", "http://u:p@h/", None):
            with self.assertRaises(UsageError):
                split_url(bad)


class JoinTest(unittest.TestCase):
    BASE = "https://h.example/api/v1/models/7/download/a.nam?x=1"

    def test_absolute(self):
        self.assertEqual(join(self.BASE, "http://other:81/x"), "http://other:81/x")

    def test_scheme_relative(self):
        self.assertEqual(join(self.BASE, "//cdn.example/f"), "https://cdn.example/f")

    def test_absolute_path(self):
        self.assertEqual(join(self.BASE, "/blob/7?sig=1"), "https://h.example/blob/7?sig=1")

    def test_relative_path_and_dots(self):
        self.assertEqual(join(self.BASE, "b.nam"), "https://h.example/api/v1/models/7/download/b.nam")
        self.assertEqual(join(self.BASE, "../../8/x"), "https://h.example/api/v1/models/8/x")

    def test_query_only(self):
        self.assertEqual(join(self.BASE, "?y=2"), "https://h.example/api/v1/models/7/download/a.nam?y=2")


class ShownTest(unittest.TestCase):
    def test_messages_never_carry_a_query_or_fragment(self):
        self.assertEqual(shown("https://s.example/blob/1/a.nam?expires=1&sig=SECRET#x"), "https://s.example/blob/1/a.nam?...")
        self.assertEqual(shown("https://s.example/a#frag"), "https://s.example/a")
        self.assertEqual(len(shown("https://s.example/" + "a" * 500)), 120)

    def test_url_errors_hide_the_query(self):
        with self.assertRaises(UsageError) as caught:
            split_url("http://[::1/x?sig=SECRET")
        self.assertNotIn("SECRET", str(caught.exception))
