"""Impact preview at scale: seed N access-log rows over the last 7 days into SQLite (default 1 M), then time the
preview of typical grants, of a changed policy file and of rule or list changes proposed in the console against
the demo policy. Goal: a few seconds at a million rows. Then how long a proposed change takes to compile, against a
full compile, with the demo's lists and with one list of --big-list domains. At 1 M rows in SQLite (2 shared cores,
idle): a change reaching a few hosts 0.7 s, dropping the social media rule 2.0 s, a rule for every site (a full
replay) 6.5 s; a proposal compiles in 0.5 ms against 150 ms for a full compile with a 2 M-domain list.

    .venv/bin/python bench/impact_bench.py [--rows 1000000] [--db var/bench/impact.db] [--reseed]
    .venv/bin/python bench/impact_bench.py --pg postgresql+psycopg://USER@HOST/DB   # seeds that (empty) database

The rows look like a school's week: 2,000 people (a tenth staff) in classes by year group; half the requests go
to a dozen popular sites, the rest to each person's own few dozen among 20,000 others. The file is kept and
reused; rows are placed relative to when it was seeded, so --reseed after a week (or the window finds nothing).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy.orm import Session  # noqa: E402

from gateway.decisions.impact import proposed_grant  # noqa: E402
from gateway.decisions.types import Action  # noqa: E402
from gateway.policy.compiled import compile_policy, load_compiled  # noqa: E402
from gateway.policy.loader import load_policy  # noqa: E402
from gateway.policy.proposed_change import (AddRule, AddToList, DropRule, PolicyChange, SetRuleAction,  # noqa: E402
                                            new_rule, propose)  # fmt: skip
from gateway.store.change_preview import preview_change  # noqa: E402
from gateway.store.engine import make_engine  # noqa: E402
from gateway.store.impact_rows import preview_from_log  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402
from gateway.store.models.access_log import reverse_host  # noqa: E402
from seed_store import empty_log_for_seeding  # noqa: E402

DEMO_POLICY = Path(__file__).resolve().parents[1] / "policies" / "default.yaml"
GOAL_S = 5.0
DAYS = 7
POPULAR = ["www.tiktok.com", "www.snapchat.com", "www.youtube.com", "www.bbc.co.uk", "www.google.co.uk",
           "classroom.google.com", "www.roblox.com", "www.facebook.com", "discord.com", "www.twitch.tv",
           "www.reddit.com", "www.pinterest.com"]  # fmt: skip


def seed(path: Path, rows: int) -> None:
    """Bulk insert in SQLite itself (a recursive CTE), indexes built afterwards."""
    db, indexes = empty_log_for_seeding(path)
    end = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    start_jd = db.execute("SELECT julianday(?)", ((end - timedelta(days=DAYS)).isoformat(sep=" "),)).fetchone()[0]
    step = DAYS / rows
    host_case = " ".join(f"WHEN {i} THEN '{h}'" for i, h in enumerate(POPULAR))
    rev_case = " ".join(f"WHEN {i} THEN '{reverse_host(h)}'" for i, h in enumerate(POPULAR))
    started = time.perf_counter()
    # MATERIALIZED: otherwise SQLite may evaluate random() again at every reference, and a person's class would
    # not follow from their number.
    db.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1}),
        r AS MATERIALIZED (SELECT i, abs(random()) % 2000 AS u, abs(random()) AS b FROM n),
        v AS (SELECT i, u, b, b % 2 = 0 AS popular, (b / 2) % {len(POPULAR)} AS p,
                     (u * 37 + (b / 2) % 40) % 20000 AS own FROM r)
        INSERT INTO access_log (row_id, at, site, username, display_name, group_name, school_class, year_group,
            device, client_ip, identity_source, method, scheme, host, host_rev, path, action, source, period)
        SELECT printf('%032x', i),
               strftime('%Y-%m-%d %H:%M:%S', {start_jd} + i * {step}) || '.000000', 'main',
               printf('user%d', u), printf('User %d', u),
               CASE WHEN u % 10 = 0 THEN 'staff' ELSE 'pupil' END,
               CASE WHEN u % 10 = 0 THEN NULL ELSE printf('%d%s', u % 6 + 1, substr('ABC', u % 3 + 1, 1)) END,
               CASE WHEN u % 10 = 0 THEN NULL ELSE u % 6 + 1 END,
               printf('ipad-%d', u), printf('10.10.%d.%d', u / 250, u % 250), 'subnet', 'GET', 'https',
               CASE WHEN popular THEN CASE p {host_case} END ELSE printf('www.site%d.example', own) END,
               CASE WHEN popular THEN CASE p {rev_case} END ELSE printf('example.site%d.www.', own) END,
               printf('/page/%d', b % 1000), 'allow', 'default', 'lesson'
        FROM v""")
    db.commit()
    print(f"  seeded {rows:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    for name, sql in indexes:
        db.execute(sql)
    db.execute("ANALYZE")
    db.commit()
    db.close()
    print(f"  indexed ({time.perf_counter() - started:.0f} s)", flush=True)


def seed_postgresql(url: str, rows: int) -> None:
    """The same week in PostgreSQL (generate_series), into an empty database the caller names."""
    upgrade(url)
    engine = make_engine(url)
    popular = "ARRAY[" + ", ".join(f"'{h}'" for h in POPULAR) + "]"
    popular_rev = "ARRAY[" + ", ".join(f"'{reverse_host(h)}'" for h in POPULAR) + "]"
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE access_log")
        # psycopg reads % as a placeholder even with no parameters.
        connection.exec_driver_sql(f"""
            INSERT INTO access_log (row_id, at, site, username, display_name, group_name, school_class, year_group,
                device, client_ip, identity_source, method, scheme, host, host_rev, path, action, source, period)
            SELECT lpad(to_hex(i), 32, '0'), now() - interval '{DAYS} days' + (i * interval '{DAYS} days') / {rows},
                   'main', 'user' || u, 'User ' || u, CASE WHEN u % 10 = 0 THEN 'staff' ELSE 'pupil' END,
                   CASE WHEN u % 10 = 0 THEN NULL ELSE (u % 6 + 1) || substr('ABC', u % 3 + 1, 1) END,
                   CASE WHEN u % 10 = 0 THEN NULL ELSE u % 6 + 1 END,
                   'ipad-' || u, '10.10.' || u / 250 || '.' || u % 250, 'subnet', 'GET', 'https',
                   CASE WHEN b % 2 = 0 THEN ({popular})[(b / 2) % {len(POPULAR)} + 1]
                        ELSE 'www.site' || (u * 37 + (b / 2) % 40) % 20000 || '.example' END,
                   CASE WHEN b % 2 = 0 THEN ({popular_rev})[(b / 2) % {len(POPULAR)} + 1]
                        ELSE 'example.site' || (u * 37 + (b / 2) % 40) % 20000 || '.www.' END,
                   '/page/' || b % 1000, 'allow', 'default', 'lesson'
            FROM (SELECT i, (random() * 1999)::int AS u, (random() * 1e9)::bigint AS b
                  FROM generate_series(0, {rows - 1}) AS i) AS r""".replace("%", "%%"))
        connection.exec_driver_sql("ANALYZE access_log")
    engine.dispose()
    print(f"  seeded {rows:,} rows into PostgreSQL ({time.perf_counter() - started:.0f} s)", flush=True)


def timed(label: str, run) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    verdict = "ok" if median <= GOAL_S else "SLOW"
    print(f"{label:60s} first {times[0]:6.2f} s  median {median:6.2f} s (goal ≤ {GOAL_S:.0f} s) {verdict}  "
          f"[{result.requests:,} requests; lets through {result.let_through.requests:,} by "
          f"{result.let_through.people:,} people to {result.let_through.host_count:,} hosts; "
          f"newly blocks {result.newly_blocked.requests:,}]", flush=True)  # fmt: skip
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default="var/bench/impact.db")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--pg", help="A PostgreSQL database URL to seed (its access log is replaced) and time.")
    parser.add_argument("--big-list", type=int, default=2_000_000, help="Domains in the big list compiled at the end.")
    args = parser.parse_args()
    if args.pg:
        seed_postgresql(args.pg, args.rows)
        url = args.pg
    else:
        path = Path(args.db)
        if args.reseed or not path.exists():
            print(f"seeding {args.rows:,} rows into {path} …")
            seed(path, args.rows)
        url = f"sqlite:///{path}"
    compiled = load_compiled(DEMO_POLICY)
    engine = make_engine(url)
    with Session(engine) as session:
        def run(extra, proposed=None):  # type: ignore[no-untyped-def]
            return lambda: preview_from_log(session, compiled, extra, now=datetime.now(UTC), proposed=proposed)

        timed("grant: social_media_other for class 5B, lessons",
              run(proposed_grant(compiled, lists=["social_media_other"], classes=["5B"], periods=["lesson"])))
        timed("grant: social_media_other for every pupil",
              run(proposed_grant(compiled, lists=["social_media_other"], groups=["pupil"])))
        timed("grant: one site for one person", run(proposed_grant(compiled, domains=["tiktok.com"],
                                                                   users=["user7"])))  # fmt: skip
        timed("policy change: every row replayed (the demo policy again)",
              run(proposed_grant(compiled, lists=["social_media_other"]), proposed=load_compiled(DEMO_POLICY)))
        for label, changes in CONSOLE_CHANGES:
            timed(f"proposed change: {label}",
                  lambda changes=changes: preview_change(session, compiled, propose(compiled, changes),
                                                         now=datetime.now(UTC)))  # fmt: skip
    engine.dispose()
    compile_times(DEMO_POLICY, "the demo policy's lists")
    with tempfile.TemporaryDirectory() as folder:
        compile_times(big_list_policy(Path(folder), args.big_list), f"one list of {args.big_list:,} domains")


# Changes as the console proposes them: the first three replay only the hosts they reach, the last every row.
CONSOLE_CHANGES: list[tuple[str, list[PolicyChange]]] = [
    ("add youtube.com to social_media_other", [AddToList("social_media_other", ("youtube.com",))]),
    ("new first rule blocking bbc.co.uk for pupils in lessons",
     [AddRule(new_rule(id="pupil-news", domains=["bbc.co.uk"], groups=["pupil"], periods=["lesson"],
                       action="block", reason="news"), first=True)]),
    ("staff's flagged lists blocked instead", [SetRuleAction("standards-staff-flagged", Action.BLOCK)]),
    ("drop the pupils' and staff's social media rule", [DropRule("social-media-pupils-staff")]),
    ("new last rule blocking every site for guests in lessons",
     [AddRule(new_rule(id="guests-lessons", groups=["guest"], periods=["lesson"], action="block", reason="r"))]),
]


def compile_times(policy: Path, label: str) -> None:
    """A proposal reuses the running policy's list index; a full compile reads and merges every list again."""
    loaded = load_policy(policy)
    compiled = compile_policy(loaded)
    full = _median(lambda: compile_policy(loaded))
    name = next(iter(compiled.policy.lists))
    change = [AddToList(name, ("proposed.example",)), AddRule(new_rule(id="proposed", domains=["other.example"],
                                                                      action="block", reason="r"))]  # fmt: skip
    proposal = _median(lambda: propose(compiled, change))
    print(f"compile with {label:40s} full compile {full * 1000:8.1f} ms   proposed change {proposal * 1000:6.2f} ms",
          flush=True)  # fmt: skip


def big_list_policy(folder: Path, size: int) -> Path:
    """The demo's school and timetable with one big list file and one small list (so the index merges them)."""
    with (folder / "big.txt").open("w") as f:
        f.writelines(f"site{i}.example\n" for i in range(size))
    school = DEMO_POLICY.read_text().split("\nimports:", 1)[0]
    lists = "lists:\n  big: {files: [big.txt]}\n  small: {domains: [small.example]}\n"
    rules = "rules:\n  - {id: big, lists: [big], action: block, reason: big}\n"
    (folder / "policy.yaml").write_text(f"{school}\n{lists}{rules}")
    load_compiled(folder / "policy.yaml")  # writes the list's compiled cache, as a running gateway has
    return folder / "policy.yaml"


def _median(run) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
