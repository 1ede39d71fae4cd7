"""Impact preview of a rule or list change: a small log whose counts are known by hand, through the pure replay,
the store (SQLite and PostgreSQL) and the `gateway impact` command. The console page is in
tests/console/test_policy_change_console.py.

The policy: lessons all day but a lunch hour (12:00-13:00), every day. Rules, first match wins:
  banned        blocks the unliftable list `banned` (facebook.com)
  pupil-social  blocks `social` (tiktok.com, snapchat.com) for pupils
  games-lessons blocks `games` (roblox.com) in lessons
  worry-flag    flags `worry` (selfharm.example)
The illegal slot holds `iwf` (abuse.test). `news` (bbc.co.uk) and `ads` (a list file) are on no rule.

The log, all yesterday; L = lesson (10:00), N = lunch (12:30):
  amy   (pupil 5B): www.tiktok.com L x3 blocked, www.roblox.com L x2 blocked, www.roblox.com N x1,
                    www.bbc.co.uk L x2, selfharm.example N x1 flagged
  ben   (pupil 6A): www.tiktok.com N x2 blocked, www.roblox.com N x3, news.bbc.co.uk L x1, www.wikipedia.org L x4
  mrs_c (staff):    www.tiktok.com N x2, www.roblox.com L x1 blocked, selfharm.example L x2 flagged,
                    www.facebook.com L x1 blocked
  not replayed:     amy www.tiktok.com x5 eight days ago; amy www.tiktok.com x1 refused by a connection check
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from gateway.decisions.impact import Change, Impact, ReplayRow, preview
from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.policy.compiled import CompiledPolicy, load_compiled
from gateway.policy.proposed_change import (AddRule, AddToList, DropRule, PolicyChange, RefusedChange,
                                            RemoveFromList, SetRuleAction, domains_of, new_rule, propose)  # fmt: skip
from gateway.store.access_rows import access_row
from gateway.store.change_preview import preview_change
from gateway.store.accounts import create_user
from gateway.store.engine import make_engine
from gateway.store.impact_rows import preview_from_log
from gateway.store.migrate import upgrade
from gateway.store.models.access_log import AccessLogEntry
from tests.store.databases import pg_schema_url  # noqa: F401 - a fixture

POLICY = """\
school: {name: Test School, contact: the e-safety officer, timezone: Europe/London}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
timetable:
  weekly:
    monday: &day
      - {start: "00:00", end: "12:00", kind: lesson}
      - {start: "12:00", end: "13:00", kind: lunch}
      - {start: "13:00", end: "24:00", kind: lesson}
    tuesday: *day
    wednesday: *day
    thursday: *day
    friday: *day
    saturday: *day
    sunday: *day
  terms: [{name: Year, start: 2020-01-01, end: 2035-12-31}]
lists:
  social: {domains: [tiktok.com, snapchat.com]}
  games: {domains: [roblox.com]}
  news: {domains: [bbc.co.uk]}
  banned: {domains: [facebook.com], unliftable: true}
  worry: {domains: [selfharm.example]}
  ads: {files: [ads.txt]}
  iwf: {domains: [abuse.test], test_entries: true}
illegal: [iwf]
rules:
  - {id: banned, lists: [banned], action: block, reason: not on this network}
  - {id: pupil-social, groups: [pupil], lists: [social], action: block, reason: social media}
  - {id: games-lessons, lists: [games], periods: [lesson], action: block, reason: games in lessons}
  - {id: worry-flag, lists: [worry], action: flag, reason: flagged}
"""
ZONE = ZoneInfo("Europe/London")
AMY = Identity(group="pupil", username="amy", school_class="5B", year_group=5, device="ipad-1", client_ip="10.0.0.1")
BEN = Identity(group="pupil", username="ben", school_class="6A", year_group=6, device="ipad-2", client_ip="10.0.0.2")
MRS_C = Identity(group="staff", username="mrs_c", device="laptop-1", client_ip="10.0.1.1")
LESSON, LUNCH = time(10, 0), time(12, 30)

# (who, host, logged action, times, when, days ago, source)
LOG = [
    (AMY, "www.tiktok.com", Action.BLOCK, 3, LESSON, 1, Source.RULE),
    (AMY, "www.roblox.com", Action.BLOCK, 2, LESSON, 1, Source.RULE),
    (AMY, "www.roblox.com", Action.ALLOW, 1, LUNCH, 1, Source.DEFAULT),
    (AMY, "www.bbc.co.uk", Action.ALLOW, 2, LESSON, 1, Source.DEFAULT),
    (AMY, "selfharm.example", Action.FLAG, 1, LUNCH, 1, Source.RULE),
    (BEN, "www.tiktok.com", Action.BLOCK, 2, LUNCH, 1, Source.RULE),
    (BEN, "www.roblox.com", Action.ALLOW, 3, LUNCH, 1, Source.DEFAULT),
    (BEN, "news.bbc.co.uk", Action.ALLOW, 1, LESSON, 1, Source.DEFAULT),
    (BEN, "www.wikipedia.org", Action.ALLOW, 4, LESSON, 1, Source.DEFAULT),
    (MRS_C, "www.tiktok.com", Action.ALLOW, 2, LUNCH, 1, Source.DEFAULT),
    (MRS_C, "www.roblox.com", Action.BLOCK, 1, LESSON, 1, Source.RULE),
    (MRS_C, "selfharm.example", Action.FLAG, 2, LESSON, 1, Source.RULE),
    (MRS_C, "www.facebook.com", Action.BLOCK, 1, LESSON, 1, Source.RULE),
    (AMY, "www.tiktok.com", Action.BLOCK, 5, LESSON, 8, Source.RULE),
    (AMY, "www.tiktok.com", Action.BLOCK, 1, LESSON, 1, Source.CONNECTION),
]
REPLAYED = 25

NOTHING = Change()
ROBLOX_IN_LESSONS = Change(requests=3, people=2, flagged=0, hosts=(("www.roblox.com", 3),), host_count=1)
WIKIPEDIA = Change(requests=4, people=1, flagged=0, hosts=(("www.wikipedia.org", 4),), host_count=1)
NEWS_IN_LESSONS = Change(requests=3, people=2, flagged=0, hosts=(("www.bbc.co.uk", 2), ("news.bbc.co.uk", 1)),
                         host_count=2)  # fmt: skip
PUPIL_RULE = {"groups": ["pupil"], "action": Action.BLOCK, "reason": "news in lessons"}

# Each change kind, and what it would have changed by hand: (let through, newly blocked).
HAND_COUNTED: dict[str, tuple[list[PolicyChange], Change, Change]] = {
    # Ben's four lesson-time visits to Wikipedia: games are blocked in lessons.
    "add wikipedia.org to games": ([AddToList("games", ("wikipedia.org",))], NOTHING, WIKIPEDIA),
    # Amy's two and Mrs C's one lesson-time visits to Roblox; the lunchtime ones were allowed anyway.
    "take roblox.com off games": ([RemoveFromList("games", ("roblox.com",))], ROBLOX_IN_LESSONS, NOTHING),
    # Amy's two and Ben's one lesson-time news visits; nobody else is a pupil.
    "add a rule blocking news for pupils in lessons": (
        [AddRule(new_rule(id="pupil-news", lists=["news"], periods=["lesson"], **PUPIL_RULE))], NOTHING,
        NEWS_IN_LESSONS),
    # Ben's two lunchtime TikTok visits; Amy's were in lessons.
    "add a first rule allowing tiktok.com to pupils at lunch": (
        [AddRule(new_rule(id="lunch-tiktok", groups=["pupil"], domains=["tiktok.com"], periods=["lunch"],
                          action="allow", reason="lunch"), first=True)],
        Change(requests=2, people=1, flagged=0, hosts=(("www.tiktok.com", 2),), host_count=1), NOTHING),
    # The same rule placed last: pupil-social blocks first, so it changes nothing.
    "add a last rule allowing tiktok.com to pupils at lunch": (
        [AddRule(new_rule(id="lunch-tiktok", groups=["pupil"], domains=["tiktok.com"], periods=["lunch"],
                          action="allow", reason="lunch"))], NOTHING, NOTHING),
    # Amy's three and Ben's two TikTok visits, every one of them flagged.
    "flag pupils' social media instead": (
        [SetRuleAction("pupil-social", Action.FLAG)],
        Change(requests=5, people=2, flagged=5, hosts=(("www.tiktok.com", 5),), host_count=1), NOTHING),
    # Amy's one and Mrs C's two flagged visits.
    "block what is flagged": (
        [SetRuleAction("worry-flag", Action.BLOCK)], NOTHING,
        Change(requests=3, people=2, flagged=0, hosts=(("selfharm.example", 3),), host_count=1)),
    "drop the games rule": ([DropRule("games-lessons")], ROBLOX_IN_LESSONS, NOTHING),
    "drop the games rule and add wikipedia.org to games": (
        [DropRule("games-lessons"), AddToList("games", ("wikipedia.org",))], ROBLOX_IN_LESSONS, NOTHING),
    "take roblox.com off games and add wikipedia.org": (
        [RemoveFromList("games", ("roblox.com",)), AddToList("games", ("wikipedia.org",))], ROBLOX_IN_LESSONS,
        WIKIPEDIA),
}


def write_policy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ads.txt").write_text("ads.example\ntracker.example\n")
    path = folder / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory) -> Path:
    return write_policy(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="module")
def compiled(policy_file) -> CompiledPolicy:
    return load_compiled(policy_file)


def logged_at(now: datetime, when: time, days_ago: int, second: int = 0) -> datetime:
    day = now.astimezone(ZONE).date() - timedelta(days=days_ago)
    return datetime.combine(day, when, ZONE) + timedelta(seconds=second)


def log_rows(now: datetime) -> list[ReplayRow]:
    """The fixture as the pure replay sees it, one row a request (those the store leaves out left out)."""
    return [
        ReplayRow(host, "/", who.group, who.username, who.year_group, who.school_class,
                  logged_at(now, when, days), who.username)  # fmt: skip
        for who, host, _, times, when, days, source in LOG
        if days < 7 and source is not Source.CONNECTION
        for _ in range(times)
    ]


def seed_log(url: str, now: datetime) -> None:
    """The log in a database, with a console account for each role."""
    upgrade(url)
    engine = make_engine(url)
    rows = []
    for who, host, action, times, when, days, source in LOG:
        for n in range(times):
            at = logged_at(now, when, days, n)
            decision = Decision(action, source, "test", PeriodKind.LUNCH if when == LUNCH else PeriodKind.LESSON, host)
            rows.append(access_row(identity=who, decision=decision, instant=at, method="GET", scheme="https",
                                   host=host, path=f"/page/{n}", query="", status=200, size=10, keep_query=False,
                                   site="main"))  # fmt: skip
    with Session(engine) as session, session.begin():
        session.execute(insert(AccessLogEntry), rows)
        for role in ("officer", "headteacher", "dpo", "teacher", "it"):
            create_user(session, role, f"{role.title()} Staff", role, "correct horse battery")
    engine.dispose()


# --- the pure replay -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(HAND_COUNTED))
def test_each_change_kind_counts_what_was_counted_by_hand(compiled, name):
    changes, let_through, newly_blocked = HAND_COUNTED[name]
    impact = preview(compiled, log_rows(datetime.now(UTC)), proposed=propose(compiled, changes).compiled)
    assert impact == Impact(REPLAYED, let_through, newly_blocked)


def test_the_running_policy_is_left_as_it_was(compiled):
    before = (compiled.names, compiled.rules, compiled.policy)
    proposed = propose(compiled, [AddRule(new_rule(id="x", domains=["wikipedia.org"], action="block", reason="r")),
                                  DropRule("games-lessons"), RemoveFromList("games", ("roblox.com",))])  # fmt: skip
    assert (compiled.names, compiled.rules, compiled.policy) == before
    assert "x" not in [rule.id for rule in compiled.policy.rules]
    assert compiled.domains.match("www.roblox.com")
    # List bits do not move, so grants compiled against the running policy mean the same lists in the proposal.
    assert proposed.compiled.names[: len(compiled.names)] == compiled.names
    assert proposed.compiled.names[-1] == "rule:x"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ([RemoveFromList("banned", ("facebook.com",))], "'banned' is marked unliftable"),
        ([RemoveFromList("iwf", ("abuse.test",))], "'iwf' is in the illegal-content slot"),
        ([AddRule(new_rule(id="x", lists=["banned"], action="allow", reason="r"))],
         "may not name the unliftable list 'banned'"),
        ([AddRule(new_rule(id="x", lists=["iwf"], action="flag", reason="r"))], "unliftable list 'iwf'"),
        ([AddRule(new_rule(id="x", domains=["m.facebook.com"], action="allow", reason="r"), first=True)],
         "'m.facebook.com': it is on the unliftable list 'banned'"),
        ([AddRule(new_rule(id="x", groups=["staff"], action="allow", reason="r"), first=True)],
         "may not match every site: it would let through the unliftable list 'banned'"),
        ([SetRuleAction("banned", Action.FLAG)], "'banned' set to flag may not name the unliftable list"),
        ([DropRule("banned")], "blocks the unliftable list 'banned': dropping it"),
        ([AddToList("nosuch", ("x.example",))], "the policy has no list 'nosuch'"),
        ([DropRule("nosuch")], "the policy has no rule 'nosuch'"),
        ([SetRuleAction("nosuch", Action.BLOCK)], "the policy has no rule 'nosuch'"),
        ([AddRule(new_rule(id="games-lessons", lists=["games"], action="block", reason="r"))],
         "already has a rule 'games-lessons'"),
        ([AddRule(new_rule(id="x", groups=["teachers"], lists=["games"], action="block", reason="r"))],
         "no group 'teachers'"),
        ([AddRule(new_rule(id="x", lists=["nosuch"], action="block", reason="r"))], "no list 'nosuch'"),
        ([RemoveFromList("games", ("www.roblox.com",))], "through its entry 'roblox.com'"),
        ([RemoveFromList("news", ("roblox.com",))], "'roblox.com' is not on the list 'news'"),
        ([AddToList("games", ("roblox.com",))], "'roblox.com' is already on the list 'games'"),
        ([SetRuleAction("games-lessons", Action.BLOCK)], "already says block"),
        ([], "no change proposed"),
    ],
)
def test_what_the_policy_could_never_accept_is_refused(compiled, changes, message):
    with pytest.raises(RefusedChange, match=message.replace("(", r"\(")):
        propose(compiled, changes)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: domains_of("not a domain!"), "not a valid domain"),
        (lambda: domains_of(" , "), "name at least one domain"),
        (lambda: domains_of(" ".join(f"d{i}.example" for i in range(101))), "at most 100 domains"),
        (lambda: new_rule(id="bad id!", lists=["games"], action="block", reason="r"), "id: String should match"),
        (lambda: new_rule(id="x", periods=["playtime"], action="block", reason="r"), "periods"),
        (lambda: new_rule(id="x", lists=["games"], action="open", reason="r"), "action"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(build, message):
    with pytest.raises(RefusedChange, match=message):
        build()


def test_the_edit_names_the_file_line_and_yaml(compiled, policy_file):
    added = propose(compiled, [AddToList("games", ("wikipedia.org",))]).edits
    assert [(e.where, e.text) for e in added] == [
        (f"{policy_file.resolve()}, line 19 (lists.games.domains): the list's `domains:` becomes",
         "domains:\n- roblox.com\n- wikipedia.org\n")]  # fmt: skip
    from_file = propose(compiled, [RemoveFromList("ads", ("tracker.example",))]).edits
    assert [(e.where, e.text) for e in from_file] == [(f"{policy_file.parent.resolve()}/ads.txt: delete the line",
                                                       "tracker.example")]  # fmt: skip
    rule = propose(compiled, [AddRule(new_rule(id="pupil-news", lists=["news"], **PUPIL_RULE), first=True)]).edits
    assert rule[0].where.endswith(", line 27 (rules.0): insert before the rule 'banned'")
    assert rule[0].text == ("- id: pupil-news\n  groups:\n  - pupil\n  lists:\n  - news\n  action: block\n"
                            "  reason: news in lessons\n")  # fmt: skip
    action = propose(compiled, [SetRuleAction("worry-flag", Action.BLOCK)]).edits
    assert [(e.where.rsplit(", ", 1)[1], e.text) for e in action] == [
        ("line 30 (rules.3.action): change `action: flag` to", "action: block")]
    dropped = propose(compiled, [DropRule("games-lessons")]).edits
    assert dropped[0].where.endswith(", line 29 (rules.2): delete the rule")


# --- through the store -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_log(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('log') / 'log.db'}"
    seed_log(url, datetime.now(UTC))
    return url


def store_preview(url: str, compiled: CompiledPolicy, changes: list[PolicyChange]) -> Impact:
    """The preview replaying only the hosts the change reaches, checked against replaying every row."""
    engine = make_engine(url)
    proposed = propose(compiled, changes)
    try:
        with Session(engine) as session:
            reached = preview_change(session, compiled, proposed, now=datetime.now(UTC))
            every_row = preview_from_log(session, compiled, now=datetime.now(UTC), proposed=proposed.compiled)
    finally:
        engine.dispose()
    assert reached == every_row
    return reached


def test_the_store_replays_the_week_on_sqlite(sqlite_log, compiled):
    for changes, let_through, newly_blocked in HAND_COUNTED.values():
        assert store_preview(sqlite_log, compiled, changes) == Impact(REPLAYED, let_through, newly_blocked)


LOGGED_HOSTS = sorted({host for _, host, *_ in LOG})


@pytest.mark.parametrize(
    ("changes", "reached"),
    [
        ([AddToList("games", ("wikipedia.org",))], ["www.wikipedia.org"]),
        ([RemoveFromList("games", ("roblox.com",))], ["www.roblox.com"]),
        ([SetRuleAction("pupil-social", Action.FLAG)], ["www.tiktok.com"]),
        ([DropRule("worry-flag"), AddRule(new_rule(id="n", lists=["news"], domains=["wikipedia.org"], action="block",
                                                   reason="r"))], ["news.bbc.co.uk", "selfharm.example",
                                                                   "www.bbc.co.uk", "www.wikipedia.org"]),
        ([AddRule(new_rule(id="all", groups=["guest"], action="block", reason="r"))], None),
    ],
)
def test_only_the_hosts_a_change_reaches_are_replayed(compiled, changes, reached):
    found = propose(compiled, changes).affected_hosts(compiled, LOGGED_HOSTS)
    assert (sorted(found) if found is not None else None) == reached


def test_the_store_replays_the_week_on_postgresql(pg_schema_url, compiled):
    url = pg_schema_url[1]
    seed_log(url, datetime.now(UTC))
    for changes, let_through, newly_blocked in HAND_COUNTED.values():
        assert store_preview(url, compiled, changes) == Impact(REPLAYED, let_through, newly_blocked)


# --- the command -----------------------------------------------------------------------------------------------


def gateway_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=120)


def test_the_command_previews_list_changes_as_json(sqlite_log, policy_file):
    done = gateway_cli("impact", "--db", sqlite_log, "--policy", str(policy_file), "--json",
                       "--remove-from-list", "games=roblox.com", "--add-to-list", "games=wikipedia.org")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["requests"] == REPLAYED
    assert result["let_through"]["hosts"] == [["www.roblox.com", 3]] and result["let_through"]["people"] == 2
    assert result["newly_blocked"]["hosts"] == [["www.wikipedia.org", 4]]
    assert [edit["text"] for edit in result["edits"]] == ["domains:\n- wikipedia.org\n"]


def test_the_command_previews_an_added_rule_and_prints_the_edit(sqlite_log, policy_file):
    done = gateway_cli("impact", "--db", sqlite_log, "--policy", str(policy_file), "--add-rule", "pupil-news=block",
                       "--list", "news", "--group", "pupil", "--period", "lesson", "--first",
                       "--reason", "news in lessons")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Replayed {REPLAYED} requests from the last 7 days." in done.stdout
    assert "Would let through: 0 requests by 0 people to 0 hosts" in done.stdout
    assert "Would newly block: 3 requests by 2 people to 2 hosts" in done.stdout
    assert "(rules.0): insert before the rule 'banned'\n    - id: pupil-news\n" in done.stdout
    assert f"then run: gateway policy reload {policy_file.resolve()}" in done.stdout


def test_the_command_changes_and_drops_rules(sqlite_log, policy_file):
    done = gateway_cli("impact", "--db", sqlite_log, "--policy", str(policy_file), "--json",
                       "--rule-action", "worry-flag=block", "--drop-rule", "games-lessons")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["let_through"]["requests"], result["newly_blocked"]["requests"]) == (3, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--remove-from-list", "banned=facebook.com"), "'banned' is marked unliftable"),
        (("--drop-rule", "banned"), "dropping it would let that list through"),
        (("--rule-action", "banned=allow"), "may not name the unliftable list 'banned'"),
        (("--add-rule", "open=allow", "--group", "pupil", "--reason", "r"), "may not match every site"),
        (("--add-rule", "x=block", "--list", "games"), "--reason: a rule needs one"),
        (("--add-rule", "x=block", "--list", "games", "--class", "5B", "--reason", "r"), "--user and --class"),
        (("--add-to-list", "games"), "write LIST=DOMAINS"),
        (("--rule-action", "games-lessons=open"), "action: one of block, allow, flag"),
    ],
)
def test_the_command_refuses_what_the_policy_could_never_accept(sqlite_log, policy_file, args, message):
    done = gateway_cli("impact", "--db", sqlite_log, "--policy", str(policy_file), *args)
    assert done.returncode == 1, done.stdout
    assert "refused:" in done.stderr and message in done.stderr
