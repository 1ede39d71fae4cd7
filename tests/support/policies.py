"""Policies for tests: the shipped demo policy, and small policies written into a temporary folder."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from gateway.policy.compiled import CompiledPolicy, load_compiled

ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = ROOT / "policies" / "default.yaml"


def weekday_timetable(term: str) -> str:
    """Lessons, lunch and lessons on weekdays in the one `term` (YAML flow mapping)."""
    return f"""\
timetable:
  weekly:
    monday: &day
      - {{start: "08:50", end: "12:00", kind: lesson}}
      - {{start: "12:00", end: "13:00", kind: lunch}}
      - {{start: "13:00", end: "15:15", kind: lesson}}
    tuesday: *day
    wednesday: *day
    thursday: *day
    friday: *day
  terms: [{term}]
"""


# The smallest valid policy; tests add sections to it.
MINIMAL = """\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
networks:
  - {name: pupils, subnets: [10.10.0.0/16], group: pupil}
  - {name: staff, subnets: [10.20.0.0/16], group: staff}
""" + weekday_timetable("{name: Autumn, start: 2026-09-03, end: 2026-12-18}")


def write_policy(folder: Path, extra: str = "", lists: dict[str, str] | None = None) -> Path:
    """Write MINIMAL plus `extra` YAML as folder/policy.yaml, and list files under folder/lists/."""
    for name, body in (lists or {}).items():
        path = folder / "lists" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body))
    policy = folder / "policy.yaml"
    policy.write_text(MINIMAL + textwrap.dedent(extra))
    return policy


def compile_demo() -> CompiledPolicy:
    return load_compiled(DEMO_POLICY)


# Every instant is lesson time, so tests about identity do not depend on the day they run.
ALWAYS_LESSON = """\
timetable:
  weekly:
    monday: &day [{start: "00:00", end: "24:00", kind: lesson}]
    tuesday: *day
    wednesday: *day
    thursday: *day
    friday: *day
    saturday: *day
    sunday: *day
  terms: [{name: Year, start: 2020-01-01, end: 2035-12-31}]
"""


# Lessons, lunch and lessons on weekdays, in a term that never ends: tests about lesson time and lunch.
SCHOOL_DAYS = weekday_timetable("{name: Always, start: 2000-01-01, end: 2099-12-31}")


def school_days_policy(head: str, tail: str = "") -> str:
    """Policy YAML: `head`, the weekday timetable of SCHOOL_DAYS, then `tail`."""
    return head + SCHOOL_DAYS + tail


def always_lesson_policy(head: str, tail: str = "") -> str:
    """Policy YAML: `head` (school, groups, networks…), the always-lesson timetable, then `tail` (lists, rules…)."""
    return head + ALWAYS_LESSON + tail


# Shared desktops whose users sign in to the proxy (roster or directory); staff-only and games sites blocked.
PROXY_AUTH_POLICY = always_lesson_policy(
    """\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
networks:
  - name: shared-desktops
    subnets: [127.0.0.0/24]
    group: guest
    identity: [proxy_auth, subnet]
""",
    """\
rules:
  - {id: staff-only, groups: [guest, pupil], domains: [staffroom.example], action: block, reason: Staff only}
  - {id: no-games, domains: [games.example], action: block, reason: Games are not allowed}
""",
)


def demo_policy_files(folder: Path, *, copy_lists: bool = False) -> None:
    """Everything the shipped demo policy reads beside it (lists, phrase files, sites' minimum ages, ...), linked
    into `folder`; the lists copied instead for a test that damages them."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in DEMO_POLICY.parent.iterdir():
        if item.name in ("default.yaml", "demo"):
            continue
        if item.name == "lists" and copy_lists:
            shutil.copytree(item, folder / "lists")
        else:
            (folder / item.name).symlink_to(item)


def demo_policy_with_devices(folder: Path, devices: dict[str, str], *, copy_lists: bool = False,
                             replace: dict[str, str] | None = None, extra: str = "") -> Path:  # fmt: skip
    """The shipped demo policy as folder/policy.yaml, with one network per test device (`{address: group}`) put
    first, so each loopback address is a different device. Its lists are linked, or copied for a test that damages
    them. `replace` swaps text in the policy; `extra` is appended."""
    demo_policy_files(folder, copy_lists=copy_lists)
    networks = "".join(
        f"  - {{name: test-{group}-{address.replace('.', '-')}, subnets: [{address}/32], group: {group}}}\n"
        for address, group in devices.items()
    )
    text = DEMO_POLICY.read_text().replace("networks:\n", "networks:\n" + networks, 1)
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    path = folder / "policy.yaml"
    path.write_text(text + extra)
    return path
