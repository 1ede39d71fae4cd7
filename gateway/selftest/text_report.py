"""The self-test report as plain text, for the terminal and for mail."""

from __future__ import annotations

from gateway.selftest.plan import ILLEGAL, Expect
from gateway.selftest.runner import Report, Status


def render_text(report: Report) -> str:
    lines = [
        f"Filter self-test: {report.school}",
        f"Run {report.ran_at:%Y-%m-%d %H:%M} by {report.ran_by} through the proxy at {report.proxy}",
        f"The gateway decided as in: {', '.join(report.periods) or 'unknown'} (what is blocked may depend on it)",
        "",
    ]
    if report.plan.slot_filled:
        lines.append(f"Illegal-content slot: filled ({', '.join(report.plan.slot_lists)})")
    else:
        named = ", ".join(report.plan.slot_lists) or "none"
        lines.append(f"Illegal-content slot: EMPTY - the licensed lists ({named}) hold no entries; ask the school's "
                     "licensed filtering provider for them")  # fmt: skip
    year = f", year {report.plan.year_group}" if report.plan.year_group is not None else ""
    for group in report.plan.groups:
        lines += ["", f"Group {group}{year} (expected: {report.plan.expect[group].value} every known-bad category)"]
        for result in report.for_group(group):
            bad_ok, bad = result.counts(known_bad=True)
            good_ok, good = result.counts(known_bad=False)
            status = result.status.value.upper()
            filtered = "blocked" if result.expect is Expect.BLOCK or result.category == ILLEGAL else "filtered"
            lines.append(f"  {status:<12} {result.title}: known-bad {bad_ok}/{bad} {filtered}, "
                         f"known-good {good_ok}/{good} open")  # fmt: skip
            for outcome in result.outcomes:
                if not outcome.passed:
                    kind = "known-bad" if outcome.probe.known_bad else "known-good"
                    lines.append(f"      {kind} {outcome.probe.url}: {outcome.action} ({outcome.detail})")
    failed = sum(r.status is Status.FAIL for r in report.results)
    lines += ["", "PASSED: every category as the standards expect" if report.passed
              else f"FAILED: {failed} group and category checks did not hold"]  # fmt: skip
    return "\n".join(lines) + "\n"
