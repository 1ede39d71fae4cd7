"""The decision engine, pure: who, what and when in, a decision with its reason out."""

from datetime import datetime

import pytest

from gateway.decisions.engine import InvalidTarget, decide_target, split_target
from gateway.decisions.types import Action, PeriodKind, Source
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.compiled import CompiledPolicy, load_compiled
from gateway.policy.exceptions import ExceptionSet, compile_grant
from gateway.policy.model import ExceptionGrant
from tests.support.policies import write_policy

LESSON = datetime.fromisoformat("2026-09-07T09:30")
BREAK = datetime.fromisoformat("2026-09-07T10:35")
LUNCH = datetime.fromisoformat("2026-09-07T12:30")
SATURDAY = datetime.fromisoformat("2026-09-12T11:00")


def who(group: str, **kw) -> Identity:
    return Identity(group=group, source=IdentitySource.GIVEN, **kw)


def runtime_exceptions(policy: CompiledPolicy, **grant) -> ExceptionSet:
    """An exception set built by hand, as the store's unblock workflow hands them to the engine at run time."""
    bits = {name: 1 << i for i, name in enumerate(policy.names)}
    full = ExceptionGrant(expires=datetime(2030, 1, 1), reason="Handed in at run time.", **grant)
    return ExceptionSet((compile_grant(full, bits, policy.zone),))


def test_named_social_media_blocked_for_everyone_at_all_times(demo_policy):
    for group in ("pupil", "staff", "guest"):
        for at in (LESSON, BREAK, SATURDAY):
            decision = decide_target(demo_policy, who(group), "https://www.facebook.com/", at)
            assert decision.action is Action.BLOCK
            assert decision.rule == "social-media-named"
            assert decision.list == "social_media_named"
            assert decision.matched == "facebook.com"
            assert "not accessible on the school's network" in decision.reason


@pytest.mark.parametrize("host", ["x.com", "twitter.com", "instagram.com", "pbs.twimg.com", "scontent.cdninstagram.com"])
def test_named_hosts(demo_policy, host):
    assert decide_target(demo_policy, who("staff"), host, LUNCH).rule == "social-media-named"


def test_other_social_media_by_group_and_period(demo_policy):
    tiktok = "https://www.tiktok.com/@someone"
    assert decide_target(demo_policy, who("pupil"), tiktok, BREAK).action is Action.BLOCK
    assert decide_target(demo_policy, who("staff"), tiktok, LUNCH).rule == "social-media-pupils-staff"
    in_lesson = decide_target(demo_policy, who("guest"), tiktok, LESSON)
    assert (in_lesson.action, in_lesson.rule, in_lesson.period) == (
        Action.BLOCK,
        "social-media-guests-lessons",
        PeriodKind.LESSON,
    )
    at_break = decide_target(demo_policy, who("guest"), tiktok, BREAK)
    assert (at_break.action, at_break.source, at_break.period) == (Action.ALLOW, Source.DEFAULT, PeriodKind.BREAK)


def test_label_boundaries(demo_policy):
    pupil = who("pupil")
    assert decide_target(demo_policy, pupil, "notfacebook.com", LESSON).action is Action.ALLOW
    assert decide_target(demo_policy, pupil, "facebook.com.example.org", LESSON).action is Action.ALLOW
    assert decide_target(demo_policy, pupil, "m.facebook.com", LESSON).action is Action.BLOCK
    assert decide_target(demo_policy, pupil, "FACEBOOK.COM.", LESSON).action is Action.BLOCK
    assert decide_target(demo_policy, pupil, "http://Facebook.com:8080/x", LESSON).action is Action.BLOCK


@pytest.mark.parametrize("target", ["", "http://", "exa mple.com", "a..b.com", "http://[::1", "a" * 300])
def test_malformed_targets_are_refused(demo_policy, target):
    with pytest.raises(InvalidTarget):
        decide_target(demo_policy, who("pupil"), target, LESSON)


def test_split_target_keeps_path_and_query():
    assert split_target("https://Example.org:443/a/b?q=1") == ("example.org", "/a/b?q=1")
    assert split_target("example.org") == ("example.org", "/")


def test_everything_else_is_allowed_by_default(demo_policy):
    decision = decide_target(demo_policy, who("pupil"), "https://www.bbc.co.uk/bitesize", LESSON)
    assert (decision.action, decision.source, decision.rule) == (Action.ALLOW, Source.DEFAULT, None)


PRECEDENCE = """
lists:
  illegal_test: {files: [lists/illegal.txt]}
  games: {domains: [games.example]}
  sensitive: {domains: [sensitive.example]}
illegal: [illegal_test]
rules:
  - {id: block-games-lessons, periods: [lesson], lists: [games], action: block, reason: No games in lessons.}
  - {id: flag-sensitive, groups: [staff], lists: [sensitive], action: flag, reason: Reported to the officer.}
  - {id: block-sensitive, lists: [sensitive], action: block, reason: Not for pupils.}
  - {id: year6-research, year_groups: [6], domains: [research.example], action: allow, reason: Year 6 topic.}
  - {id: research, domains: [research.example], action: block, reason: Not yet.}
exceptions:
  - id: games-club
    groups: [pupil]
    classes: [5B]
    domains: [games.example]
    starts: 2026-09-07T09:00
    expires: 2026-09-07T10:00
    reason: Headteacher approved for 5B's coding lesson.
    approved_by: head
"""


@pytest.fixture
def precedence(tmp_path):
    return load_compiled(write_policy(tmp_path, PRECEDENCE, {"illegal.txt": "# test entry\nillegal-content.test\n"}))


def test_illegal_lists_beat_exceptions_and_rules(precedence):
    # The loader refuses a policy exception naming an illegal list; one handed in at run time cannot lift it either.
    lift = runtime_exceptions(precedence, id="lift-illegal", lists=["illegal_test"], domains=["illegal-content.test"])
    decision = decide_target(precedence, who("staff"), "https://cdn.illegal-content.test/x", LESSON, lift)
    assert (decision.action, decision.source, decision.list) == (Action.BLOCK, Source.ILLEGAL, "illegal_test")


def test_exception_lifts_a_rule_only_in_scope_and_window(precedence):
    in_5b = who("pupil", school_class="5B")
    lifted = decide_target(precedence, in_5b, "games.example", LESSON)
    assert (lifted.action, lifted.source, lifted.rule) == (Action.ALLOW, Source.EXCEPTION, "games-club")
    assert decide_target(precedence, who("pupil", school_class="5C"), "games.example", LESSON).action is Action.BLOCK
    after = datetime.fromisoformat("2026-09-07T10:00")
    assert decide_target(precedence, in_5b, "games.example", after).rule == "block-games-lessons"
    # An aware instant is converted to school time: 08:30 UTC is 09:30 BST, inside the window.
    assert decide_target(precedence, in_5b, "games.example", datetime.fromisoformat("2026-09-07T08:30Z")).source is (
        Source.EXCEPTION
    )


def test_first_matching_rule_wins(precedence):
    assert decide_target(precedence, who("staff"), "sensitive.example", LESSON).action is Action.FLAG
    assert decide_target(precedence, who("pupil"), "sensitive.example", LESSON).action is Action.BLOCK


def test_rules_by_year_group(precedence):
    assert decide_target(precedence, who("pupil", year_group=6), "research.example", LESSON).action is Action.ALLOW
    assert decide_target(precedence, who("pupil", year_group=5), "research.example", LESSON).action is Action.BLOCK


def test_rules_can_name_devices_and_their_ownership(tmp_path):
    policy = load_compiled(write_policy(tmp_path, """
lists:
  games: {domains: [games.example]}
  video: {domains: [video.example]}
rules:
  - {id: byod-no-video, device_ownership: [personal, unregistered], lists: [video], action: block, reason: Not on own devices}
  - {id: suite-games, devices: [Suite-PC-01], lists: [games], action: allow, reason: Games club PC}
  - {id: no-games, lists: [games], action: block, reason: No games}
"""))  # fmt: skip

    def decide(device: str | None, owner: str | None, url: str):  # type: ignore[no-untyped-def]
        return decide_target(policy, who("pupil", device=device, device_owner=owner), url, LESSON)

    assert decide("Phone-Ben", "personal", "https://video.example/").rule == "byod-no-video"
    assert decide(None, None, "https://video.example/").rule == "byod-no-video"
    assert decide("iPad-07", "school", "https://video.example/").action is Action.ALLOW
    assert decide("suite-pc-01", "school", "https://games.example/").rule == "suite-games"
    assert decide("iPad-07", "school", "https://games.example/").rule == "no-games"
    assert decide(None, None, "https://games.example/").rule == "no-games"
