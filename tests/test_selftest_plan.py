"""What the self-test asks for, worked out from the policy alone: known-bad addresses from the lists that fill each
category, known-good sites from the data file, the illegal slot's test entry, and content pages only when content
analysis is on."""

from __future__ import annotations

import pytest

from gateway.policy.loader import load_policy
from gateway.selftest.categories import SelftestCategory
from gateway.selftest.plan import CONTENT, ILLEGAL, Expect, SelftestDataError, build_plan
from tests.support.policies import DEMO_POLICY, write_policy


def test_the_demo_policy_is_tested_with_its_own_list_entries():
    plan = build_plan(load_policy(DEMO_POLICY))
    assert plan.groups == ("pupil", "staff", "guest")
    assert plan.expect == {"pupil": Expect.BLOCK, "staff": Expect.FILTER, "guest": Expect.BLOCK}
    bad = {p.url for p in plan.probes if p.known_bad and p.category == SelftestCategory.GAMBLING}
    assert bad == {"http://bet365.com/", "http://williamhill.com/", "http://paddypower.com/"}
    assert [p.url for p in plan.probes if p.category == ILLEGAL] == ["http://illegal-content.test/"]
    assert plan.uncovered == (SelftestCategory.PIRACY,)
    assert not plan.slot_filled and plan.slot_lists == ("iwf", "ctiru")
    # Content analysis is on in the demo: one page per analysed category, served at /<category>.
    content = [p.url for p in plan.probes if p.category == CONTENT]
    assert "http://content-check.selftest.test/self_harm" in content and "/self_harm" in plan.pages


def test_a_policy_without_categories_or_content_has_nothing_to_test_but_is_said_so(tmp_path):
    policy = write_policy(tmp_path, """
lists:
  games: {files: [lists/games.txt]}
  fake_illegal: {domains: [illegal-content.test], test_entries: true}
illegal: [fake_illegal]
""", lists={"games.txt": "games.example\n"})
    plan = build_plan(load_policy(policy), ["pupil"], year_group=3)
    assert plan.groups == ("pupil",) and plan.year_group == 3 and plan.uncovered == tuple(SelftestCategory)
    assert [p.category for p in plan.probes if p.known_bad] == [ILLEGAL]
    assert plan.pages == {}
    # No licensed list is named at all: the slot is empty.
    assert not plan.slot_filled and plan.slot_lists == ()


def test_an_unknown_group_is_refused():
    with pytest.raises(SelftestDataError, match="unknown group 'pupils'"):
        build_plan(load_policy(DEMO_POLICY), ["pupils"])
