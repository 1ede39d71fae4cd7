"""Reports made from traffic by the access-log writer, on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.store.access_rows import access_row
from gateway.store.engine import make_engine
from gateway.store.models.reports import Report
from gateway.store.reports import create_report, matches_of
from gateway.store.spool import Spool
from gateway.store.writer import AccessLogWriter
from tests.store.databases import db_url, pg_schema_url  # noqa: F401

AMY = Identity(group="pupils", client_ip="10.1.2.3", username="amy", display_name="Amy P", school_class="5B",
               year_group=5, device="ipad-07")  # fmt: skip
GUEST = Identity(group="guest", client_ip="10.9.9.9")
ALLOW = Decision(Action.ALLOW, Source.DEFAULT, "allowed", PeriodKind.LESSON, "news.example")
FLAG = Decision(Action.FLAG, Source.RULE, "forums are watched", PeriodKind.LESSON, "forum.example",
                rule="flag-forums", list="forums", matched="forum.example")  # fmt: skip
ILLEGAL = Decision(Action.BLOCK, Source.ILLEGAL, "illegal", PeriodKind.LESSON, "bad.example", list="ctiru",
                   matched="bad.example")  # fmt: skip
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def finding(action: str = "flag", category: str = "self_harm", high_risk: bool = True, kind: str = "page") -> dict:
    return {"kind": kind, "action": action, "category": category, "score": 12, "matches": ["cut myself", "k1ll"],
            "excerpt": "… I want to <b>cut myself</b> …", "high_risk": high_risk}  # fmt: skip


def row(host: str, decision: Decision = ALLOW, *, who: Identity = AMY, at: datetime = T0, found: dict | None = None,
        path: str = "/page") -> dict:  # fmt: skip
    made = access_row(identity=who, decision=decision, instant=at, method="GET", scheme="https", host=host, path=path,
                      query="", status=200, size=100, keep_query=False, site="St Mary's")  # fmt: skip
    made["finding"] = found
    return made


def write(url: str, spool, rows: list[dict]) -> None:
    writer = AccessLogWriter(url, spool, batch_size=500, interval=0.05).start()
    for r in rows:
        writer.submit(r)
    writer.close()


def reports(url: str) -> list[Report]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(session.scalars(sa.select(Report).order_by(Report.id)))
    finally:
        engine.dispose()


def test_flags_findings_and_illegal_attempts_make_one_report_each_and_repeats_count(db_url, tmp_path):
    rows = [
        row("news.example"),  # allowed, no finding: nothing
        row("news.example", found=finding(action="allow", category=None, high_risk=False)),  # under the thresholds
        row("forum.example", FLAG),
        row("forum.example", FLAG, at=T0 + timedelta(minutes=1)),
        row("blog.example", found=finding()),
        row("blog.example", found=finding(), at=T0 + timedelta(minutes=5), path="/other"),
        row("www.google.co.uk", found=finding(kind="search", category="adult", high_risk=False, action="block")),
        row("bad.example", ILLEGAL, who=GUEST),
    ]
    write(db_url, tmp_path / "spool", rows)
    made = {(r.kind, r.host): r for r in reports(db_url)}
    assert set(made) == {("flagged_site", "forum.example"), ("page", "blog.example"),
                         ("search", "www.google.co.uk"), ("illegal_attempt", "bad.example")}  # fmt: skip
    flagged = made["flagged_site", "forum.example"]
    assert (flagged.hits, flagged.category, flagged.alert_state, flagged.queue) == (2, "forums", "none", "officer")
    assert flagged.created_at == T0 and flagged.last_seen_at == T0 + timedelta(minutes=1)
    page = made["page", "blog.example"]
    assert (page.username, page.school_class, page.device, page.client_ip) == ("amy", "5B", "ipad-07", "10.1.2.3")
    assert (page.category, page.score, page.hits, page.alert_state) == ("self_harm", 12, 2, "due")
    assert matches_of(page) == ["cut myself", "k1ll"] and "cut myself" in page.excerpt
    assert page.url == "https://blog.example/page"
    assert made["search", "www.google.co.uk"].alert_state == "none"
    illegal = made["illegal_attempt", "bad.example"]
    assert (illegal.category, illegal.alert_state, illegal.username, illegal.client_ip) == ("terrorism", "due", None,
                                                                                           "10.9.9.9")  # fmt: skip
    # A later batch repeats an open report rather than adding one; once it is decided, a new one opens.
    write(db_url, tmp_path / "spool", [row("forum.example", FLAG, at=T0 + timedelta(hours=1))])
    again = [r for r in reports(db_url) if r.host == "forum.example"]
    assert [(r.hits, r.last_seen_at) for r in again] == [(3, T0 + timedelta(hours=1))]
    engine = make_engine(db_url)
    with engine.begin() as c:
        c.execute(sa.update(Report).where(Report.id == again[0].id).values(status="dismissed"))
    engine.dispose()
    write(db_url, tmp_path / "spool", [row("forum.example", FLAG, at=T0 + timedelta(hours=2))])
    assert [(r.status, r.hits) for r in reports(db_url) if r.host == "forum.example"] == [("dismissed", 3),
                                                                                         ("open", 1)]  # fmt: skip


def test_a_replay_after_an_outage_does_not_count_twice(db_url, tmp_path):
    batch = [row("forum.example", FLAG, at=T0 + timedelta(seconds=n)) for n in range(10)]
    # The first half was committed, then the process died before removing the spool file holding all ten.
    write(db_url, tmp_path / "other-spool", batch[:5])
    Spool(tmp_path / "spool").write(batch)
    AccessLogWriter(db_url, tmp_path / "spool").start().close()
    assert [r.hits for r in reports(db_url)] == [10]
    # And the whole file again: nothing new.
    Spool(tmp_path / "spool").write(batch)
    AccessLogWriter(db_url, tmp_path / "spool").start().close()
    assert [r.hits for r in reports(db_url)] == [10]


def test_the_finding_survives_the_spool(db_url, tmp_path):
    Spool(tmp_path / "spool").write([row("blog.example", found=finding())])
    AccessLogWriter(db_url, tmp_path / "spool").start().close()
    assert [(r.kind, r.category, r.alert_state) for r in reports(db_url)] == [("page", "self_harm", "due")]


def test_selftest_traffic_never_makes_a_report(db_url, tmp_path):
    rows = [row("forum.example", FLAG), row("blog.example", found=finding()), row("bad.example", ILLEGAL)]
    for r in rows:
        r["identity_source"] = "selftest"
    write(db_url, tmp_path / "spool", rows)
    assert reports(db_url) == []


def test_people_without_a_username_are_told_apart_by_device_then_address(db_url, tmp_path):
    on_device = Identity(group="guest", client_ip="10.0.0.5", device="lab-01")
    rows = [row("forum.example", FLAG, who=on_device), row("forum.example", FLAG, who=GUEST),
            row("forum.example", FLAG, who=Identity(group="guest", client_ip="10.0.0.6", device="lab-01"))]  # fmt: skip
    write(db_url, tmp_path / "spool", rows)
    assert sorted((r.device, r.hits) for r in reports(db_url) if r.device) == [("lab-01", 2)]
    assert len(reports(db_url)) == 2


def test_a_person_files_a_contact_attempt_for_the_headteacher(db_url):
    engine = make_engine(db_url)
    with Session(engine) as session:
        made = create_report(session, kind="contact", queue="headteacher", reporter="mr.jones", reporter_role="staff",
                             service="Instagram", happened_at=T0, other_party="a Year 9 parent",
                             details="friend request", now=T0 + timedelta(hours=1))  # fmt: skip
        session.commit()
        stored = session.get(Report, made.id)
        assert stored is not None
        assert (stored.queue, stored.status, stored.hits, stored.alert_state) == ("headteacher", "open", 1, "none")
        assert (stored.service, stored.happened_at, stored.reporter) == ("Instagram", T0, "mr.jones")
    engine.dispose()


def test_a_hostile_finding_never_costs_the_access_log_its_row(db_url, tmp_path):
    """A NUL, bytes that are not Unicode and an over-long category in a finding: the report and the row both land."""
    hostile = {"kind": "search", "action": "block", "category": "adult" * 30, "score": 9,
               "matches": ["po\x00rn"], "excerpt": "hidden\x00porn \udcff", "high_risk": False}  # fmt: skip
    made = row("www.google.co.uk", found=hostile)
    write(db_url, tmp_path / "spool", [made])
    [report] = reports(db_url)
    assert report.excerpt == "hidden\\x00porn \\udcff" and len(report.category) == 64
    assert matches_of(report) == ["po\x00rn"]
    engine = make_engine(db_url)
    with engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from access_log")) == 1
    engine.dispose()


def test_a_malformed_finding_makes_no_report_and_loses_no_row(db_url, tmp_path):
    malformed = [row("a.example", found={"kind": "page", "action": "flag", "score": "lots"}),
                 row("b.example", found="not a finding"), row("forum.example", FLAG)]  # type: ignore[arg-type]
    write(db_url, tmp_path / "spool", malformed)
    assert [r.host for r in reports(db_url)] == ["forum.example"]
    engine = make_engine(db_url)
    with engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from access_log")) == 3
    engine.dispose()
