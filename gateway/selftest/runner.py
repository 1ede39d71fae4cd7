"""Runs a self-test plan through the running proxy: each probe asked for as each group with a signed token, the
proxy's decision read back, and each group and category judged against what the standards expect."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from gateway.selftest.categories import SelftestCategory
from gateway.selftest.origin import MARK_HEADER, SelftestOrigin
from gateway.selftest.plan import ILLEGAL, Expect, Plan, Probe
from gateway.selftest.token import HEADER, RESULT_HEADER, mint

TIMEOUT_SECONDS = 10.0


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    # No list of the policy fills the category: nothing was tested.
    UNCOVERED = "not covered"


@dataclass(frozen=True, slots=True)
class Outcome:
    probe: Probe
    # allow, flag or block as the proxy decided; "error" when no decision came back.
    action: str
    detail: str
    passed: bool


@dataclass(frozen=True, slots=True)
class CategoryResult:
    group: str
    category: str
    expect: Expect
    outcomes: tuple[Outcome, ...]
    status: Status

    @property
    def title(self) -> str:
        if self.category == ILLEGAL:
            return "Illegal content (IWF/CTIRU slot)"
        return SelftestCategory(self.category).label

    def counts(self, known_bad: bool) -> tuple[int, int]:
        """(passed, tried) for the known-bad or the known-good probes."""
        tried = [o for o in self.outcomes if o.probe.known_bad is known_bad]
        return sum(o.passed for o in tried), len(tried)


@dataclass(frozen=True, slots=True)
class Report:
    school: str
    ran_at: datetime
    ran_by: str
    proxy: str
    plan: Plan
    results: tuple[CategoryResult, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(r.status is not Status.FAIL for r in self.results)

    def for_group(self, group: str) -> list[CategoryResult]:
        return [r for r in self.results if r.group == group]

    def as_dict(self) -> dict[str, Any]:
        return {
            "school": self.school,
            "ran_at": self.ran_at.isoformat(),
            "ran_by": self.ran_by,
            "proxy": self.proxy,
            "passed": self.passed,
            "illegal_slot": {"filled": self.plan.slot_filled, "lists": list(self.plan.slot_lists)},
            "uncovered": [c.value for c in self.plan.uncovered],
            "results": [
                {
                    "group": r.group, "category": r.category, "expect": r.expect.value, "status": r.status.value,
                    "probes": [
                        {"url": o.probe.url, "known_bad": o.probe.known_bad, "action": o.action, "detail": o.detail,
                         "passed": o.passed}
                        for o in r.outcomes
                    ],
                }  # fmt: skip
                for r in self.results
            ],
        }


def run_selftest(plan: Plan, proxy_url: str, secret: str, *, ran_by: str, now: datetime) -> Report:
    results: list[CategoryResult] = []
    with SelftestOrigin() as origin, httpx.Client(proxy=proxy_url, timeout=TIMEOUT_SECONDS, trust_env=False) as http:
        for group in plan.groups:
            token = mint(secret, group, None, origin.address)
            outcomes = [_ask(http, probe, token, origin.mark, plan.expect[group]) for probe in plan.probes]
            results += _judge(group, plan.expect[group], outcomes)
    return Report(plan.school, now, ran_by, proxy_url, plan, tuple(results))


def _ask(http: httpx.Client, probe: Probe, token: str, mark: str, expect: Expect) -> Outcome:
    # Plain HTTP: the proxy decides on the host and path alone, and sends what it allows to the local origin.
    url = "http://" + probe.url.split("://", 1)[-1]
    try:
        response = http.get(url, headers={HEADER: token})
    except httpx.HTTPError as exc:
        return Outcome(probe, "error", f"no answer from the proxy: {exc}", False)
    answer = response.headers.get(RESULT_HEADER)
    if answer is None:
        return Outcome(probe, "error", "the proxy did not take the self-test token (is it this gateway, given the "
                                       "console's secret file?)", False)  # fmt: skip
    decision = json.loads(answer)
    action = str(decision.get("action"))
    if action != "block" and response.headers.get(MARK_HEADER) != mark:
        return Outcome(probe, "error", "the page did not come from the self-test's own server", False)
    detail = ", ".join(f"{k} {decision[k]}" for k in ("rule", "list") if decision.get(k)) or str(decision.get("source"))
    if not probe.known_bad:
        passed = action in ("allow", "flag")
    elif probe.category == ILLEGAL or expect is Expect.BLOCK:
        passed = action == "block"
    else:
        passed = action in ("block", "flag")
    return Outcome(probe, action, detail, passed)


def _judge(group: str, expect: Expect, outcomes: Sequence[Outcome]) -> list[CategoryResult]:
    results = []
    for category in [ILLEGAL, *(c.value for c in SelftestCategory)]:
        mine = tuple(o for o in outcomes if o.probe.category == category)
        if not any(o.probe.known_bad for o in mine):
            status = Status.UNCOVERED
        elif all(o.passed for o in mine):
            status = Status.PASS
        else:
            status = Status.FAIL
        if mine or category != ILLEGAL:
            results.append(CategoryResult(group, category, expect, mine, status))
    return results
