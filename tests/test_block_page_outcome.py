"""The block page's line about the person's earlier request, and the index that finds it: pure, no proxy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.proxy.blockpage import BlockNotice, render_block_page
from gateway.proxy.earlier_requests import EarlierRequests
from gateway.store.request_outcomes import RequestOutcome

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=LONDON)
AMY = Identity(group="pupil", client_ip="10.1.2.3", username="amy", display_name="Amy Jones")
BEN = Identity(group="pupil", client_ip="10.1.2.4", username="ben")
GUEST = Identity(group="guest", client_ip="10.1.9.9")
ASKED = RequestOutcome(number=1, username="amy", client_ip="10.1.2.3", host="games.example", whole_site=False,
                       asked_at=datetime(2026, 11, 30, 14, 0, tzinfo=UTC), status="new", said=None)  # fmt: skip


def page(earlier: RequestOutcome | None, request_url: str | None = "http://gateway.school/request") -> str:
    decision = Decision(Action.BLOCK, Source.RULE, "Games are not allowed", PeriodKind.LESSON, "games.example",
                        rule="no-games", list="games")  # fmt: skip
    return render_block_page(BlockNotice(decision=decision, identity=AMY, url="http://games.example/", instant=NOW,
                                         school="Test Primary", contact="the e-safety officer",
                                         request_url=request_url, reference="abc", earlier=earlier))  # fmt: skip


def test_no_request_no_line() -> None:
    assert "You asked" not in page(None)


def test_each_state_in_the_requesters_words() -> None:
    assert "You asked for access on 30 Nov: waiting for the e-safety officer" in page(ASKED)
    assert "You asked for access on 30 Nov: waiting for the headteacher" in page(replace(ASKED, status="forwarded"))
    rejected = page(replace(ASKED, status="rejected", said="Not needed for lessons"))
    assert "You asked for access on 30 Nov: not approved — Not needed for lessons" in rejected
    asked = page(replace(ASKED, status="more_info", said="Which lesson is it for?"))
    assert ("the e-safety officer asked a question — Which lesson is it for? — "
            '<a href="http://gateway.school/request">answer it here</a>') in asked  # fmt: skip
    assert "answer it on the request form" in page(replace(ASKED, status="more_info", said="Which?"), None)


def test_an_approval_says_until_when_and_that_it_ended() -> None:
    approved = replace(ASKED, status="approved", said="For the coding club", until=NOW + timedelta(hours=2))
    assert "approved until 1 Dec, 12:00 — For the coding club" in page(approved)
    assert "approved until 1 Dec, 09:00; that has ended" in page(replace(approved, until=NOW - timedelta(hours=1)))
    assert "the approval was ended early" in page(replace(approved, ended_early=True))
    assert "approved until 1 Jan 2100, 00:00" in page(replace(approved, until=datetime(2100, 1, 1, tzinfo=UTC)))


def test_what_a_pupil_or_the_staff_typed_is_shown_as_text() -> None:
    hostile = '<script>alert(1)</script><a href="http://evil.example">x</a>'
    shown = page(replace(ASKED, status="rejected", said=hostile))
    assert "<script>" not in shown and 'href="http://evil.example"' not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "<script>" not in page(replace(ASKED, status="more_info", said=hostile), 'x" onmouseover="alert(1)')
    assert 'href="x&quot; onmouseover=&quot;a"' in page(replace(ASKED, status="more_info"), 'x" onmouseover="a')


def test_the_index_finds_only_this_persons_or_this_devices_requests() -> None:
    guests = replace(ASKED, number=2, username=None, client_ip="10.1.9.9")
    index = EarlierRequests([ASKED, guests])
    assert index.latest(AMY, "games.example") == ASKED
    assert index.latest(BEN, "games.example") is None
    assert index.latest(GUEST, "games.example") == guests
    # Amy signed in on the guest's device is still Amy; nobody signed in on Amy's device sees nothing of hers.
    assert index.latest(replace(AMY, client_ip="10.1.9.9"), "games.example") == ASKED
    assert index.latest(replace(GUEST, client_ip="10.1.2.3"), "games.example") is None
    assert index.latest(Identity(group="guest"), "games.example") is None


def test_a_whole_site_request_covers_the_names_under_it_and_the_newest_wins() -> None:
    page_only = replace(ASKED, host="www.games.example")
    site = replace(ASKED, number=3, host="www.games.example", whole_site=True, status="rejected")
    assert EarlierRequests([page_only]).latest(AMY, "play.games.example") is None
    assert EarlierRequests([page_only]).latest(AMY, "games.example") is None
    index = EarlierRequests([page_only, site])
    assert index.latest(AMY, "play.games.example") == site
    assert index.latest(AMY, "games.example") == site
    assert index.latest(AMY, "www.games.example") == site
    assert index.latest(AMY, "othergames.example") is None
    newer = replace(ASKED, number=4, host="www.games.example")
    assert EarlierRequests([page_only, site, newer]).latest(AMY, "www.games.example") == newer
