"""Runs a self-test plan through the running proxy: each probe asked for as each group with a signed token, the
proxy's decision read back, and each group and category judged against what the standards expect."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.client import HTTPConnection, HTTPException
from typing import Any
from urllib.parse import urlsplit

from gateway.selftest.categories import SelftestCategory
from gateway.selftest.origin import MARK_HEADER, SelftestOrigin
from gateway.selftest.plan import CONTENT, ILLEGAL, Expect, Plan, Probe
from gateway.selftest.token import HEADER, RESULT_HEADER, digest, mint

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
    # The kind of school time the gateway decided in (lesson, lunch …): results depend on it.
    period: str | None = None


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
        if self.category == CONTENT:
            return "Page content (real-time analysis)"
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

    @property
    def categories(self) -> list[CategoryResult]:
        """One result per category tested, in report order (the first group's), for row titles."""
        return self.for_group(self.plan.groups[0]) if self.plan.groups else []

    @property
    def periods(self) -> list[str]:
        """The kinds of school time the gateway decided in during the run (one, unless the run spanned a change)."""
        return list(dict.fromkeys(o.period for r in self.results for o in r.outcomes if o.period))

    def for_group(self, group: str) -> list[CategoryResult]:
        return [r for r in self.results if r.group == group]

    def as_dict(self) -> dict[str, Any]:
        return {
            "school": self.school,
            "ran_at": self.ran_at.isoformat(),
            "ran_by": self.ran_by,
            "proxy": self.proxy,
            "passed": self.passed,
            "year_group": self.plan.year_group,
            "periods": self.periods,
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
    proxy = urlsplit(proxy_url)
    if proxy.scheme != "http" or not proxy.hostname:
        raise ValueError(f"the proxy address must be http://host:port, not {proxy_url!r}")
    with SelftestOrigin(pages=plan.pages) as origin:
        for group in plan.groups:
            token = mint(secret, group, plan.year_group, origin.address)
            # Straight to the proxy, asking in the absolute form a proxy takes: whatever the environment's proxy
            # settings say, nothing goes anywhere else.
            connection = HTTPConnection(proxy.hostname, proxy.port or 80, timeout=TIMEOUT_SECONDS)
            try:
                outcomes = [_ask(connection, probe, token, origin.mark, plan.expect[group]) for probe in plan.probes]
            finally:
                connection.close()
            results += _judge(group, plan.expect[group], outcomes)
    return Report(plan.school, now, ran_by, proxy_url, plan, tuple(results))


def _ask(connection: HTTPConnection, probe: Probe, token: str, mark: str, expect: Expect) -> Outcome:
    # Plain HTTP: the proxy decides on the host and path alone, and answers what it allows from the origin.
    url = "http://" + probe.url.split("://", 1)[-1]
    try:
        connection.request("GET", url, headers={HEADER: token})
        response = connection.getresponse()
        response.read()
    except (OSError, HTTPException) as exc:
        connection.close()
        return Outcome(probe, "error", f"no answer from the proxy: {exc}", False)
    headers = response.headers
    answer = headers.get(RESULT_HEADER)
    if answer is None:
        return Outcome(probe, "error", "the proxy did not take the self-test token (is it this gateway, given the "
                                       "console's secret file?)", False)  # fmt: skip
    try:
        decision = json.loads(answer)
    except ValueError:
        decision = None
    if not isinstance(decision, dict) or decision.get("token") != digest(token):
        # Not the proxy's answer to this token: a site's own header, passed on by a proxy that ignored the token.
        return Outcome(probe, "error", "the answer was not the gateway's answer to this self-test", False)
    action = str(decision.get("action"))
    period = decision.get("period") if isinstance(decision.get("period"), str) else None
    if action != "block" and headers.get(MARK_HEADER) != mark:
        return Outcome(probe, "error", "the page did not come from the self-test's own server", False, period)
    detail = ", ".join(f"{k} {decision[k]}" for k in ("rule", "list") if decision.get(k)) or str(decision.get("source"))
    if probe.category == CONTENT and action != "allow" and decision.get("source") != CONTENT:
        # Blocked by an address rule (a policy that blocks every unlisted site), not by what the page says.
        return Outcome(probe, action, f"decided by {detail}, not by the page's content", False, period)
    if not probe.known_bad:
        passed = action in ("allow", "flag")
    elif probe.category == ILLEGAL or expect is Expect.BLOCK:
        passed = action == "block"
    else:
        passed = action in ("block", "flag")
    return Outcome(probe, action, detail, passed, period)


def _judge(group: str, expect: Expect, outcomes: Sequence[Outcome]) -> list[CategoryResult]:
    results = []
    for category in [ILLEGAL, *(c.value for c in SelftestCategory), CONTENT]:
        mine = tuple(o for o in outcomes if o.probe.category == category)
        if not any(o.probe.known_bad for o in mine):
            status = Status.UNCOVERED
        elif all(o.passed for o in mine):
            status = Status.PASS
        else:
            status = Status.FAIL
        if mine or category not in (ILLEGAL, CONTENT):
            results.append(CategoryResult(group, category, expect, mine, status))
    return results
