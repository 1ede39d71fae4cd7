"""Expected decisions a policy carries: `gateway policy validate` runs them and refuses a policy that breaks one,
naming the file, the line, what was expected and what the policy decides instead, and why."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from gateway.decisions.types import PeriodKind
from gateway.policy.compiled import load_compiled
from gateway.policy.expectations import check_expectations, instant_for
from gateway.policy.loader import PolicyError, load_policy
from tests.support.policies import DEMO_POLICY, ROOT, demo_policy_with_devices, write_policy

SOCIAL_RULE = """  - id: social-media-named
    lists: [social_media_named]
    action: block
    reason: Twitter/X, Facebook and Instagram are not accessible on the school's network.

"""


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", "policy", "validate", str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)  # fmt: skip


def line_of(policy: Path, text: str) -> int:
    return next(n for n, line in enumerate(policy.read_text().splitlines(), 1) if text in line)


def test_the_demo_policy_keeps_its_expected_decisions():
    run = validate(DEMO_POLICY)
    assert run.returncode == 0, run.stderr
    assert "12 expected decisions hold" in run.stdout


def test_a_policy_that_opens_facebook_is_refused_with_the_case_that_failed(tmp_path):
    policy = demo_policy_with_devices(tmp_path, {}, replace={SOCIAL_RULE: ""})
    run = validate(policy)
    assert run.returncode == 1
    assert (
        f"error: {policy}:{line_of(policy, 'www.facebook.com')}: expect.0: expected block for pupil at "
        "Mon 2026-09-07 09:40 (lesson) on https://www.facebook.com/, but the policy decides allow: the policy's "
        "default [case: Social Media Policy]"
    ) in run.stderr
    # Staff at lunch and guests after school break too; the cases that still hold are not reported.
    assert "expect.2: expected block for staff" in run.stderr and "expect.3:" in run.stderr
    assert "expect.4:" not in run.stderr


def test_a_failure_names_the_rule_list_and_entry_that_decided(tmp_path):
    policy = write_policy(tmp_path, """
lists:
  games: {files: [lists/games.txt]}
rules:
  - {id: no-games, groups: [pupil], lists: [games], action: block, reason: Games are not for lessons.}
expect:
  - {group: pupil, at: 2026-09-08T10:00, url: "https://maths.games.example/play", action: allow, why: maths}
  - {group: pupil, year_group: 6, at: weekend, url: "https://games.example/", action: block}
""", lists={"games.txt": "games.example\n"})
    with pytest.raises(PolicyError) as caught:
        check_expectations(load_compiled(policy))
    problems = [str(p) for p in caught.value.problems]
    assert problems == [
        f"{policy}:{line_of(policy, 'maths.games')}: expect.0: expected allow for pupil at Tue 2026-09-08 10:00 "
        "(lesson) on https://maths.games.example/play, but the policy decides block: rule 'no-games', list 'games' "
        "(entry 'games.example') [case: maths]"
    ]


def test_an_expected_decision_naming_an_unknown_group_or_a_bad_url_is_refused_by_the_loader(tmp_path):
    policy = write_policy(tmp_path, """
expect:
  - {group: pupils, at: lesson, url: "https://example.org/", action: allow}
  - {group: pupil, at: lesson, url: "https://exa mple/", action: allow}
  - {group: pupil, at: sometime, url: "https://example.org/", action: allow}
""")
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    text = str(caught.value)
    assert "expect.0.group: unknown group 'pupils'" in text
    assert "expect.1.url: not a URL or host" in text
    assert "expect.2.at" in text


def test_a_period_kind_stands_for_its_first_occurrence():
    demo = load_compiled(DEMO_POLICY)
    assert instant_for(demo, PeriodKind.LUNCH).replace(tzinfo=None) == datetime(2026, 9, 7, 12, 30)
    assert instant_for(demo, PeriodKind.WEEKEND).date().isoformat() == "2026-09-05"
    assert instant_for(demo, PeriodKind.HOLIDAY).date().isoformat() == "2026-10-26"
    assert instant_for(demo, PeriodKind.CLOSURE).date().isoformat() == "2027-01-04"
