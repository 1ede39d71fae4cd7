"""The block page's "Report this page" link: to the gateway's own report form, with the blocked address, escaped."""

from __future__ import annotations

from datetime import datetime
from html import unescape
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.proxy.blockpage import BlockNotice, render_block_page

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/London"))
AMY = Identity(group="pupil", client_ip="10.1.2.3", username="amy", display_name="Amy Jones")


def page(url: str, report_url: str | None, source: Source = Source.RULE) -> str:
    decision = Decision(Action.BLOCK, source, "Games are not allowed", PeriodKind.LESSON, "games.example",
                        rule="no-games", list="games")  # fmt: skip
    return render_block_page(BlockNotice(decision=decision, identity=AMY, url=url, instant=NOW, school="Test Primary",
                                         contact="the e-safety officer", request_url=None, reference="abc",
                                         report_url=report_url))  # fmt: skip


def report_link(html: str) -> str:
    start = html.index('<a href="', html.index("Reference abc")) + len('<a href="')
    return unescape(html[start:html.index('"', start)])


def test_the_link_carries_the_blocked_address_to_the_report_form() -> None:
    html = page("http://games.example/play?level=2&x=1", "http://gateway.school/report")
    assert "Report this page</a> to the e-safety officer" in html
    link = urlsplit(report_link(html))
    assert (link.scheme, link.netloc, link.path) == ("http", "gateway.school", "/report")
    assert parse_qs(link.query) == {"url": ["http://games.example/play?level=2&x=1"]}


def test_no_gateway_form_no_link() -> None:
    assert "Report this page" not in page("http://games.example/", None)


def test_a_hostile_address_stays_inside_the_link() -> None:
    hostile = 'http://games.example/"><script>alert(1)</script>'
    html = page(hostile, "http://gateway.school/report")
    assert "<script>alert(1)" not in html
    assert parse_qs(urlsplit(report_link(html)).query) == {"url": [hostile]}
