"""Circumvention incidents in the store, on a real SQLite file and the real PostgreSQL: made by the access-log writer
from rows carrying a detection (one open incident per person and technique, repeats counting, a replayed batch
counted once, self-test rows never), bans the policy applies at once, and the headteacher's decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.circumvention.incident import Confidence, Detection, Technique
from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity, IdentitySource
from gateway.store.access_rows import access_row
from gateway.store.bans import BANS, bans_in_force, start_supervision
from gateway.store.engine import make_engine
from gateway.store.incidents import StaleIncident, confirm_incident, dismiss_incident, record_incidents
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.circumvention import Ban, Incident
from gateway.store.spool import Spool
from gateway.store.versions import versions
from gateway.store.writer import AccessLogWriter
from tests.store.databases import db_url, pg_schema_url  # noqa: F401 - fixtures

AMY = Identity(group="pupils", client_ip="10.1.2.3", username="amy.p", display_name="Amy P", school_class="5B",
               year_group=5, device="ipad-07")  # fmt: skip
TABLET = Identity(group="pupils", client_ip="10.1.2.9", device="ipad-12")
BLOCK = Decision(Action.BLOCK, Source.CIRCUMVENTION, "DNS over HTTPS is not allowed", PeriodKind.LESSON,
                 "dns.example")  # fmt: skip
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
DOH = Detection(Technique.DOH, "doh-content-type", Confidence.HIGH, host="dns.example",
                url="https://dns.example/dns-query", user_agent="curl/8.5",
                extra={"content_type": "application/dns-message"})
NO_SNI = Detection(Technique.NO_SNI, "tls-no-sni", Confidence.MEDIUM, host="93.184.216.34",
                   first_bytes="\\x16\\x03\\x01\x00")  # fmt: skip


def row(detection: Detection | None, *, who: Identity = AMY, at: datetime = T0, auto_ban: bool = False,
        ban_days: int | None = None) -> dict:  # fmt: skip
    made = access_row(identity=who, decision=BLOCK, instant=at, method="POST", scheme="https", host="dns.example",
                      path="/dns-query", query="", status=403, size=100, keep_query=False,
                      site="St Mary's")  # fmt: skip
    if detection is not None:
        made["incident"] = detection.as_row_value()
        if auto_ban:
            made["incident"] |= {"auto_ban": True, "ban_days": ban_days}
    return made


def write(url: str, spool, rows: list[dict]) -> None:
    writer = AccessLogWriter(url, spool, batch_size=500, interval=0.05).start()
    for r in rows:
        writer.submit(r)
    writer.close()


@pytest.fixture
def engine(db_url):  # noqa: F811
    made = make_engine(db_url)
    yield made
    made.dispose()


def incidents(engine) -> list[Incident]:
    with Session(engine) as session:
        return list(session.scalars(sa.select(Incident).order_by(Incident.id)))


def test_one_open_incident_per_person_and_technique_with_its_evidence_and_a_notice_due(engine, db_url, tmp_path):
    rows = [
        row(None),  # a plain block: no incident
        row(DOH),
        row(DOH, at=T0 + timedelta(minutes=3)),
        row(NO_SNI, at=T0 + timedelta(minutes=1)),
        row(DOH, who=TABLET),
        row(DOH, who=Identity(group="pupils", client_ip="10.1.2.10")),
        row(DOH, who=Identity(group="staff", client_ip="10.1.2.11", source=IdentitySource.SELFTEST)),
    ]
    write(db_url, tmp_path / "spool", rows)
    made = {(i.person_key, i.technique): i for i in incidents(engine)}
    assert set(made) == {("user:amy.p", "doh"), ("user:amy.p", "no_sni"), ("device:ipad-12", "doh"),
                         ("ip:10.1.2.10", "doh")}  # fmt: skip
    doh = made["user:amy.p", "doh"]
    assert (doh.hits, doh.created_at, doh.last_seen_at) == (2, T0, T0 + timedelta(minutes=3))
    assert (doh.username, doh.display_name, doh.school_class, doh.year_group, doh.device, doh.client_ip) == (
        "amy.p", "Amy P", "5B", 5, "ipad-07", "10.1.2.3")
    assert (doh.detector, doh.confidence, doh.host, doh.url, doh.user_agent) == (
        "doh-content-type", "high", "dns.example", "https://dns.example/dns-query", "curl/8.5")
    assert '"application/dns-message"' in doh.evidence and doh.source_row_id == rows[1]["row_id"]
    assert (doh.status, doh.notice_state, doh.notice_attempts, doh.site) == ("open", "due", 0, "St Mary's")
    # A NUL in the first bytes is stored readably, not refused by PostgreSQL.
    assert made["user:amy.p", "no_sni"].first_bytes == "\\x16\\x03\\x01\\x00"


def test_a_repeat_after_a_decision_opens_a_new_incident(engine, db_url, tmp_path):
    write(db_url, tmp_path / "spool", [row(DOH)])
    with Session(engine) as session:
        dismiss_incident(session, incidents(engine)[0].id, by="head", note="the school's own resolver", now=T0)
        session.commit()
    write(db_url, tmp_path / "spool", [row(DOH, at=T0 + timedelta(hours=1))])
    assert [(i.status, i.hits, i.notice_state) for i in incidents(engine)] == [("dismissed", 1, "due"),
                                                                               ("open", 1, "due")]  # fmt: skip


def test_a_replayed_batch_counts_once_and_the_spool_keeps_the_detection(engine, db_url, tmp_path):
    rows = [row(DOH), row(DOH, at=T0 + timedelta(minutes=1))]
    write(db_url, tmp_path / "spool", rows)
    # The same batch comes back from the spool (a commit whose answer was lost in an outage), with one new row.
    spool = Spool(tmp_path / "spool")
    spool.write(rows + [row(DOH, at=T0 + timedelta(minutes=2))])
    write(db_url, tmp_path / "spool", [])
    assert not spool.pending()
    [doh] = incidents(engine)
    assert (doh.hits, doh.last_seen_at) == (3, T0 + timedelta(minutes=2))
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry)) == 3


def test_a_malformed_detection_loses_no_row(engine, db_url, tmp_path):
    bad = row(DOH)
    bad["incident"] = {"technique": "teleport", "detector": "?", "confidence": "high"}
    write(db_url, tmp_path / "spool", [bad, row(DOH, at=T0 + timedelta(minutes=1))])
    assert [i.hits for i in incidents(engine)] == [1]
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry)) == 2


def record(engine, rows: list[dict], now: datetime) -> None:
    with engine.begin() as connection:
        record_incidents(connection, rows, now=now)


def test_an_auto_ban_detection_bans_the_person_at_once_for_the_policy_s_days(engine, db_url, tmp_path):
    before = datetime.now(UTC)
    write(db_url, tmp_path / "spool", [row(DOH, auto_ban=True, ban_days=14),
                                       row(DOH, at=T0 + timedelta(minutes=1), auto_ban=True, ban_days=14),
                                       row(DOH, who=TABLET, auto_ban=True, ban_days=14)])  # fmt: skip
    [amy, tablet] = incidents(engine)
    with Session(engine) as session:
        [ban] = session.scalars(sa.select(Ban)).all()
        assert (ban.username, ban.display_name, ban.created_by, ban.incident_id) == ("amy.p", "Amy P", "gateway",
                                                                                     amy.id)  # fmt: skip
        # From when the store learnt of it, in real time: the gateway's clock may be pinned for a rehearsal.
        assert before <= ban.starts_at <= datetime.now(UTC) and ban.ends_at - ban.starts_at == timedelta(days=14)
        assert "DNS over HTTPS" in ban.reason
        assert versions(session, (BANS,)) == {BANS: 1}
        # A device alone is never banned (a ban follows a username); the incident is still recorded.
        assert tablet.person_key == "device:ipad-12"


def test_an_auto_ban_while_a_ban_is_in_force_changes_nothing(engine):
    record(engine, [row(DOH, auto_ban=True, ban_days=14)], T0)
    record(engine, [row(NO_SNI, auto_ban=True, ban_days=None)], T0 + timedelta(days=1))
    record(engine, [row(NO_SNI, auto_ban=True, ban_days=None)], T0 + timedelta(days=15))
    with Session(engine) as session:
        bans = session.scalars(sa.select(Ban).order_by(Ban.id)).all()
        assert [(b.starts_at, b.ends_at) for b in bans] == [(T0, T0 + timedelta(days=14)),
                                                            (T0 + timedelta(days=15), None)]  # fmt: skip
        assert versions(session, (BANS,)) == {BANS: 2}


def test_confirming_bans_the_person_and_dismissing_lifts_a_ban_the_gateway_made(engine, db_url, tmp_path):
    record(engine, [row(DOH), row(NO_SNI, auto_ban=True, ban_days=3), row(DOH, who=TABLET)], T0)
    doh, no_sni, tablet = incidents(engine)
    with Session(engine) as session:
        dismiss_incident(session, no_sni.id, by="head", note="the school's own kiosk", now=T0 + timedelta(hours=1))
        session.commit()
        assert bans_in_force(session, T0 + timedelta(hours=2)) == []
        ban = confirm_incident(session, doh.id, by="head", note="Talked to Amy", now=T0 + timedelta(hours=2),
                               ban_ends_at=T0 + timedelta(days=7))  # fmt: skip
        session.commit()
        assert ban is not None and (ban.created_by, ban.incident_id, ban.ends_at) == (
            "head", doh.id, T0 + timedelta(days=7))
        assert [b.username for b in bans_in_force(session, T0 + timedelta(days=1))] == ["amy.p"]
        # A device alone: confirmed, nobody to ban.
        assert confirm_incident(session, tablet.id, by="head", note="", now=T0, ban_ends_at=None) is None
        session.commit()
        with pytest.raises(StaleIncident):
            dismiss_incident(session, doh.id, by="officer", note="late", now=T0 + timedelta(days=1))
        session.rollback()
        start_supervision(session, username="amy.p", teacher="mr.jones", ends_at=T0 + timedelta(days=1, hours=1),
                          note=None, now=T0 + timedelta(days=1))  # fmt: skip
        session.commit()
        # ban, dismissal lifting it, confirmation, supervision
        assert versions(session, (BANS,)) == {BANS: 4}
    decided = {i.id: i for i in incidents(engine)}
    assert (decided[doh.id].status, decided[doh.id].decided_by, decided[doh.id].decision_note) == (
        "confirmed", "head", "Talked to Amy")
    assert decided[no_sni.id].status == "dismissed"


def test_record_incidents_joins_the_callers_transaction(engine):
    with engine.connect() as connection:
        with connection.begin() as transaction:
            assert record_incidents(connection, [row(DOH, auto_ban=True)]) == 1
            transaction.rollback()
    assert incidents(engine) == []
    with Session(engine) as session:
        assert session.scalars(sa.select(Ban)).all() == []
