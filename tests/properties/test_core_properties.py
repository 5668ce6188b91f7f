"""Property-based tests of the core (CPython only: hypothesis does not run on MicroPython).

They throw generated inputs at the pieces that parse what the network sends and at the
download loop, and check the invariants that must hold for every input, not just the
examples in tests/core.
"""

import hashlib
import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))

from fakes import MemorySink, signed_in  # noqa: E402
from tonecore.download import DownloadPlan, parse_content_range  # noqa: E402
from tonecore.errors import DownloadError, ProtocolError  # noqa: E402
from tonecore.records import Model, Page, Tone  # noqa: E402
from tonecore.urls import parse_query, quote, unquote, urlencode  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(st.text())
def test_quote_round_trips_and_is_ascii_safe(text):
    quoted = quote(text)
    assert unquote(quoted) == text
    assert all(c.isalnum() or c in "-._~%" for c in quoted)


@SETTINGS
@given(st.dictionaries(st.text(min_size=1), st.text()))
def test_query_strings_round_trip(pairs):
    assert parse_query(urlencode(pairs)) == pairs


@SETTINGS
@given(st.text())
def test_content_range_parser_raises_only_protocol_errors(text):
    try:
        first, last, total = parse_content_range(text)
    except ProtocolError:
        return
    if first is not None:
        assert 0 <= first <= last and (total is None or last < total)


@SETTINGS
@given(st.dictionaries(st.text(max_size=12), JSON, max_size=12), st.sampled_from(["tone", "model", "page"]))
def test_records_accept_anything_or_raise_protocol_error(data, kind):
    # Whatever JSON object the service sends, parsing either works (and every field reads
    # as its type or None) or raises ProtocolError: never a crash of another kind.
    try:
        if kind == "tone":
            tone = Tone(data)
            assert isinstance(tone.id, int) and isinstance(tone.title, str)
            for name in ("gear", "platform", "license", "description", "url"):
                assert getattr(tone, name) is None or isinstance(getattr(tone, name), str)
            tone.to_json()
        elif kind == "model":
            model = Model(data)
            assert "/" not in model.filename and model.filename not in ("", ".", "..")
            model.to_json()
        else:
            Page(data, Tone)
    except ProtocolError:
        pass


def model_bytes(size):
    return b'{"version":"1","architecture":"A","config":{},"weights":[' + b"7" * (size - 60) + b']}\n'


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=17, max_value=6000),
    cut_fractions=st.lists(st.floats(min_value=0.0, max_value=0.999), max_size=5),
    range_support=st.booleans(),
    resume_fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_download_survives_any_cuts_and_verifies(size, cut_fractions, range_support, resume_fraction):
    # Any sequence of cuts, with or without Range, starting from any valid .part prefix:
    # the sink ends up holding exactly the file, and the returned hash is the file's -
    # or the download gives up with DownloadError; it never returns wrong bytes.
    clock, api, client, driver = signed_in()
    data = model_bytes(size)
    api.files["/files/m.nam"] = data
    api.range_support = range_support
    api.cuts = [int(f * size) for f in cut_fractions]
    offset = int(resume_fraction * size)
    sink = MemorySink(data[:offset])
    plan = DownloadPlan("https://api.example/files/m.nam", "m.nam", offset=offset)
    plan.absorb_prefix(data[:offset])
    try:
        sha = driver.run(client.download(plan, sink))
    except DownloadError:
        assert not range_support  # only a server ignoring Range can make us give up here
        return
    expected = hashlib.sha256(data).hexdigest()
    assert sha == expected and sink.digest() == expected
