"""The content guard's parts without a proxy: body decoding, the stream callable and the finding cache, with the
demo policy's real analyser."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import brotli
import pytest
from mitmproxy.http import Headers

from gateway.decisions.types import Action
from gateway.identity.types import Identity
from gateway.proxy.content_guard import BodyText, FindingCache, PageStream, Undecodable, analyse_body
from tests.test_content_e2e import FLAGGED

FIXTURES = Path(__file__).parent / "fixtures" / "content"
HARMFUL = (FIXTURES / "harmful" / "en_suicide_forum_1.html").read_bytes()
PUPIL = Identity(group="pupil")
STAFF = Identity(group="staff")
HTML = Headers(content_type="text/html; charset=utf-8")
PADDING = b"<p>" + b"The river flows gently past the old mill. " * 100 + b"</p>\n"


def feed(stream: PageStream, body: bytes, size: int = 65536) -> list[bytes]:
    sent: list[bytes] = []
    for start in range(0, len(body), size):
        sent += stream(body[start : start + size])
    return sent + stream(b"")


def test_the_charset_comes_from_the_page_meta_when_the_header_has_none():
    page = '<html><head><meta charset="iso-8859-2"></head><body>samobójstwo łatwe</body></html>'
    text = BodyText(Headers(content_type="text/html")).feed(page.encode("iso-8859-2"), final=True)
    assert "samobójstwo łatwe" in text


def test_compressed_text_is_decoded_piece_by_piece():
    body = gzip.compress(b"<p>" + b"a" * (8 << 20) + b"</p>")
    text = BodyText(Headers(content_type="text/html", content_encoding="gzip"))
    assert len(text.feed(body, final=True)) == (8 << 20) + 7


def test_an_unknown_or_broken_encoding_is_undecodable(demo_policy):
    with pytest.raises(Undecodable):
        analyse_body(demo_policy.content, PUPIL, Headers(content_type="text/html", content_encoding="rot13"), HARMFUL)
    with pytest.raises(Undecodable):
        analyse_body(demo_policy.content, PUPIL, Headers(content_type="text/html", content_encoding="br"), HARMFUL)


def test_a_stream_that_ends_within_the_limit_is_answered_whole(demo_policy):
    stream = PageStream(demo_policy.content, PUPIL, HTML, lambda found: b"BLOCK PAGE")
    assert feed(stream, HARMFUL, 100) == [b"BLOCK PAGE"]
    assert stream.finding is not None and stream.finding.action is Action.BLOCK
    clean = PageStream(demo_policy.content, PUPIL, HTML, lambda found: b"BLOCK PAGE")
    assert b"".join(feed(clean, PADDING * 10, 1000)) == PADDING * 10


def test_a_long_stream_passes_until_it_crosses_the_block_threshold_and_never_sends_an_empty_chunk(demo_policy):
    body = PADDING * (3 * 1024 * 1024 // len(PADDING)) + HARMFUL + PADDING * 10
    stream = PageStream(demo_policy.content, PUPIL, HTML, lambda found: b"BLOCK PAGE")
    sent = feed(stream, body)
    assert b"" not in sent
    passed = b"".join(sent)
    assert len(passed) > 2 * 1024 * 1024 and b"painless way to die" not in passed
    assert stream.finding is not None and stream.finding.category == "suicide" and stream.cut


def test_a_stream_whose_encoding_breaks_stops_and_fails(demo_policy):
    headers = Headers(content_type="text/html", content_encoding="br")
    body = brotli.compress(PADDING * 2000)[:-10] + b"garbage" * 500_000
    stream = PageStream(demo_policy.content, PUPIL, headers, lambda found: b"BLOCK PAGE")
    feed(stream, body)
    assert stream.failed


def test_the_cache_remembers_a_finding_per_body_and_thresholds_and_forgets_it_with_a_new_policy(demo_policy):
    cache = FindingCache(size=2)
    first = cache.finding(demo_policy.content, PUPIL, HTML, FLAGGED)
    assert cache.finding(demo_policy.content, PUPIL, HTML, FLAGGED) is first
    # Staff have their own thresholds: their finding is their own.
    assert cache.finding(demo_policy.content, STAFF, HTML, FLAGGED) is not first
    # Another charset reads the same bytes differently.
    assert cache.finding(demo_policy.content, PUPIL, Headers(content_type="text/plain; charset=latin-1"), FLAGGED) \
        is not first
    assert cache.finding(demo_policy.content, PUPIL, HTML, FLAGGED) is not first  # pushed out (size 2)
    # A reloaded policy compiles a new analyser.
    other = replace(demo_policy.content)
    again = cache.finding(other, PUPIL, HTML, FLAGGED)
    assert cache.finding(other, PUPIL, HTML, FLAGGED) is again
    assert again == first
