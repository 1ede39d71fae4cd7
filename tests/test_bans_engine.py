"""Supervised-only bans in the decision engine, pure: a banned person is blocked on every site and connection, on
any device, until a supervised session or the ban's end; the gateway's sign-in and report pages stay open."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.decisions.engine import decide, decide_target
from gateway.decisions.types import Action, Source
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.bans import BAN_REASON, BanEntry, BanSet
from gateway.policy.exceptions import ExceptionSet
from gateway.proxy.blockpage import BlockNotice, render_block_page

LESSON = datetime.fromisoformat("2026-09-07T09:30")
NOW = 1_800_000_000.0
AMY = Identity(group="pupil", source=IdentitySource.PORTAL, username="amy.p", display_name="Amy P",
               device="ipad-07")  # fmt: skip
OWN = "gateway.school"


def banned(ends_at: float | None = None, supervised_until: float | None = None, **names: str) -> ExceptionSet:
    bans = {"amy.p": BanEntry(7, ends_at, supervised_until), "mr.jones": BanEntry(8, None, None)}
    owners = {"ipad-07": "amy.p", "laptop-3": "mr.jones", **names}
    return ExceptionSet((), BanSet(bans, OWN, owners.get, clock=lambda: NOW))


@pytest.mark.parametrize("target", ["https://www.bbc.co.uk/bitesize", "http://example.org/", "www.nhs.uk"])
def test_a_banned_pupil_is_blocked_on_sites_the_policy_allows(demo_policy, target):
    decision = decide_target(demo_policy, AMY, target, LESSON, banned())
    assert (decision.action, decision.source, decision.reason, decision.rule) == (
        Action.BLOCK, Source.BAN, BAN_REASON, "supervised-only")
    # Nobody else is: the same site for another pupil follows the policy.
    other = decide_target(demo_policy, Identity(group="pupil", username="ben.k"), target, LESSON, banned())
    assert other.source is not Source.BAN


def test_the_ban_follows_the_person_to_any_device_and_a_device_to_its_person(demo_policy):
    exceptions = banned()
    elsewhere = Identity(group="pupil", source=IdentitySource.PORTAL, username="AMY.P", device="library-pc-2")
    assert decide(demo_policy, elsewhere, "www.bbc.co.uk", "/", LESSON, exceptions).source is Source.BAN
    # Nobody signed in on Amy's iPad: it is hers, so it is banned too.
    her_ipad = Identity(group="pupil", source=IdentitySource.SUBNET, device="ipad-07")
    assert decide(demo_policy, her_ipad, "www.bbc.co.uk", "/", LESSON, exceptions).source is Source.BAN
    # Someone else signed in on it is judged as themselves.
    ben = Identity(group="pupil", source=IdentitySource.PORTAL, username="ben.k", device="ipad-07")
    assert decide(demo_policy, ben, "www.bbc.co.uk", "/", LESSON, exceptions).source is not Source.BAN


def test_staff_can_be_banned_too(demo_policy):
    jones = Identity(group="staff", username="mr.jones")
    assert decide(demo_policy, jones, "www.bbc.co.uk", "/", LESSON, banned()).source is Source.BAN


def test_a_connection_is_decided_too(demo_policy):
    # A CONNECT target or a TLS server name is decided with no path.
    assert decide(demo_policy, AMY, "www.bbc.co.uk", "", LESSON, banned()).source is Source.BAN


def test_the_illegal_lists_keep_their_own_block(demo_policy):
    assert decide_target(demo_policy, AMY, "http://illegal-content.test/", LESSON, banned()).source is Source.ILLEGAL


def test_a_supervised_session_lets_the_policy_decide_until_it_ends(demo_policy):
    during = decide_target(demo_policy, AMY, "https://www.bbc.co.uk/", LESSON, banned(supervised_until=NOW + 1))
    assert (during.action, during.source) == (Action.ALLOW, decide_target(demo_policy, AMY, "https://www.bbc.co.uk/",
                                                                          LESSON).source)  # fmt: skip
    # Supervision does not lift the policy: Facebook stays blocked by its rule.
    assert decide_target(demo_policy, AMY, "https://www.facebook.com/", LESSON,
                         banned(supervised_until=NOW + 1)).source is Source.RULE  # fmt: skip
    assert decide_target(demo_policy, AMY, "https://www.bbc.co.uk/", LESSON,
                         banned(supervised_until=NOW)).source is Source.BAN  # fmt: skip


def test_a_ban_past_its_end_no_longer_applies(demo_policy):
    bbc = "https://www.bbc.co.uk/"
    assert decide_target(demo_policy, AMY, bbc, LESSON, banned(ends_at=NOW)).source is not Source.BAN
    assert decide_target(demo_policy, AMY, bbc, LESSON, banned(ends_at=NOW + 1)).source is Source.BAN


@pytest.mark.parametrize(("path", "open_"), [
    ("", True),  # the connection to the gateway
    ("/portal/sign-in?next=https%3A%2F%2Fwww.bbc.co.uk%2F", True),
    ("/portal/sign-out", True),
    ("/portal", True),
    ("/report?url=https://x.example/", True),
    ("/static/console.css", True),
    ("/request?url=https://www.bbc.co.uk/", False),  # asking for sites is not for a banned pupil
    ("/logs", False),
    ("/portal/../logs", False),
    ("/portal/%2e%2e/logs", False),
    ("/portalx", False),
    ("/reports", False),
])
def test_the_gateway_s_sign_in_and_report_pages_stay_open(demo_policy, path, open_):
    decision = decide(demo_policy, AMY, OWN, path, LESSON, banned())
    assert (decision.source is not Source.BAN) is open_
    # Only at the gateway's own address.
    assert decide(demo_policy, AMY, "portal.example", path, LESSON, banned()).source is Source.BAN


def test_the_block_page_tells_a_child_to_ask_their_teacher(demo_policy):
    decision = decide_target(demo_policy, AMY, "https://www.bbc.co.uk/", LESSON, banned())
    page = render_block_page(BlockNotice(decision, AMY, "https://www.bbc.co.uk/", LESSON.astimezone(), "Perryfields",
                                         "Mrs Patel", "http://gateway.school/request", "ref-1",
                                         report_url="http://gateway.school/report"))  # fmt: skip
    assert "You are on supervised-only access" in page and "ask your teacher" in page.lower()
    # No request form: a teacher's supervised session is the way back, not an unblock.
    assert "Ask for access" not in page and "/request" not in page
    assert "Report this page" in page
