"""The image-consent register, device approval and the uploads page through the console's test client: the DPO
records, amends and withdraws consent (history kept, each change audited); consent lapses at the end of the
academic year in the school's time zone; the export is audited; roles, CSRF and escaping hold."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.directory import import_devices, import_people
from gateway.identity.people import Device, Person
from gateway.identity.types import Identity
from gateway.store.access_rows import access_row
from gateway.store.consent import ConsentRefused, academic_year, record_consent, register, school_day
from gateway.store.engine import make_engine
from gateway.store.models.audit import AuditEvent
from gateway.store.models.devices import DeviceRecord
from gateway.store.writer import AccessLogWriter
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import seed
from tests.support.console import csrf, post, signed_in
from tests.support.policies import write_policy

LONDON = ZoneInfo("Europe/London")
XSS = "<script>alert('consent')</script>"


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = seed(tmp_path)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        import_people(s, [Person("amy", "Amy Pupil", "pupil", year_group=6, school_class="6B"),
                          Person("ben", "=Ben Formula", "pupil", year_group=2, school_class="2A"),
                          Person("mrs.k", "Helen Khan", "staff")])  # fmt: skip
        import_devices(s, [Device("Office-iPad", "aa:bb:cc:00:00:12", "ipad", username="mrs.k"),
                           Device("Khan-phone", "aa:bb:cc:00:00:13", "phone", personal=True, username="mrs.k")])  # fmt: skip
    engine.dispose()
    return url


@pytest.fixture
def app(tmp_path: Path, url: str):  # type: ignore[no-untyped-def]
    policy = write_policy(tmp_path, "uploads: {school_accounts: [mrs.k]}\n")
    return create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))


def audit_actions(url: str) -> list[str]:
    engine = make_engine(url)
    with Session(engine) as s:
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    engine.dispose()
    return actions


def today() -> date:
    return school_day(datetime.now(UTC), LONDON)


def test_the_dpo_records_amends_and_withdraws_and_the_history_stays(app, url: str) -> None:  # type: ignore[no-untyped-def]
    dpo = signed_in(app, "dpo")
    page = dpo.get("/consent/pupil/amy").get_data(as_text=True)
    assert "no consent" in page
    day = today().isoformat()
    form = {"csrf_token": csrf(page), "change": "recorded", "images": "yes", "video": "yes",
            "channels": ["website", "social_media"], "effective_on": day, "source": "signed form " + day}  # fmt: skip
    assert dpo.post("/consent/pupil/amy", data=form).status_code == 302
    assert "images and video: school website, school social media" in dpo.get("/consent/").get_data(as_text=True)

    amended = post(dpo, "/consent/pupil/amy", change="amended", images="yes", channels="newsletter",
                   effective_on=day, source="email from parent: no video")  # fmt: skip
    assert amended.status_code == 302
    withdrawn = post(dpo, "/consent/pupil/amy", change="withdrawn", effective_on=day, source=XSS)
    assert withdrawn.status_code == 302

    page = dpo.get("/consent/pupil/amy").get_data(as_text=True)
    assert 'id="standing">withdrawn<' in page
    history = page.split('id="history"')[1]
    assert history.count("<tr>") == 4  # the header and three changes, none overwritten
    assert "signed form" in history and "email from parent: no video" in history
    assert XSS not in page and "&lt;script&gt;alert(&#39;consent&#39;)&lt;/script&gt;" in page
    assert XSS not in dpo.get("/consent/").get_data(as_text=True)
    actions = audit_actions(url)
    assert ["consent_recorded", "consent_amended", "consent_withdrawn"] == [
        a for a in actions if a.startswith("consent_") and a != "consent_viewed"]  # fmt: skip
    assert "consent_viewed" in actions


def test_bad_changes_are_refused_with_a_reason_and_change_nothing(app) -> None:  # type: ignore[no-untyped-def]
    dpo = signed_in(app, "dpo")
    day = today()
    for form, words in [
        ({"change": "amended", "images": "yes", "channels": "website", "effective_on": day.isoformat(),
          "source": "email"}, "nothing is recorded"),
        ({"change": "recorded", "images": "yes", "channels": "website",
          "effective_on": (day + timedelta(days=1)).isoformat(), "source": "form"}, "in the future"),
        ({"change": "recorded", "images": "yes", "effective_on": day.isoformat(), "source": "form"}, "channels"),
        ({"change": "recorded", "images": "yes", "channels": "website", "effective_on": day.isoformat(),
          "source": "  "}, "written source"),
        ({"change": "recorded", "effective_on": "yesterday", "source": "form"}, "YYYY-MM-DD"),
    ]:  # fmt: skip
        refused = post(dpo, "/consent/pupil/amy", **form)
        assert refused.status_code == 400 and words in refused.get_data(as_text=True)
    assert post(dpo, "/consent/pupil/mrs.k", change="recorded", images="yes", channels="website",
                effective_on=day.isoformat(), source="form").status_code == 400  # fmt: skip
    assert "no consent" in dpo.get("/consent/pupil/amy").get_data(as_text=True)


def test_consent_lapses_at_the_end_of_the_academic_year_in_the_school_time_zone(url: str) -> None:
    engine = make_engine(url)
    with Session(engine) as s:
        record_consent(s, username="amy", change="recorded", images=True, video=False, channels=["website"],
                       effective_on=date(2026, 9, 4), source="signed form 2026-09-04", by="dpo",
                       now=datetime.now(UTC), today=date(2026, 9, 10))  # fmt: skip
        s.commit()

        def standing(day: date) -> str:
            return {p.username: p.summary() for p in register(s, day)}["amy"]

        assert standing(date(2026, 9, 3)) == "no consent"  # before the form's date
        assert standing(date(2026, 9, 4)) == "images: school website"
        assert standing(date(2027, 8, 31)) == "images: school website"
        assert standing(date(2027, 9, 1)) == "no consent"
        # 23:30 UTC on 31 August is 00:30 on 1 September in London: the new year, no consent.
        late = datetime(2027, 8, 31, 23, 30, tzinfo=UTC)
        assert school_day(late, LONDON) == date(2027, 9, 1) and standing(school_day(late, LONDON)) == "no consent"
        assert standing(school_day(late - timedelta(hours=1), LONDON)) == "images: school website"
        assert academic_year(date(2027, 8, 31)) == 2026 and academic_year(date(2027, 9, 1)) == 2027
        # A change dated in a year with nothing recorded is a new recording, not an amendment.
        with pytest.raises(ConsentRefused, match="2027/28"):
            record_consent(s, username="amy", change="withdrawn", images=False, video=False, channels=[],
                           effective_on=date(2027, 9, 2), source="email", by="dpo", now=datetime.now(UTC),
                           today=date(2027, 9, 3))  # fmt: skip
    engine.dispose()


def test_who_may_see_and_change_the_register(app) -> None:  # type: ignore[no-untyped-def]
    teacher = signed_in(app, "teacher")
    assert teacher.get("/consent/").status_code == 403
    assert teacher.get("/consent/pupil/amy").status_code == 403
    assert "Image consent" not in teacher.get("/help").get_data(as_text=True)
    assert signed_in(app, "it").get("/consent/").status_code == 403

    officer = signed_in(app, "officer")
    assert "Image consent" in officer.get("/help").get_data(as_text=True)
    page = officer.get("/consent/pupil/amy").get_data(as_text=True)
    assert page and "Record a change" not in page
    refused = post(officer, "/consent/pupil/amy", change="recorded", images="yes", channels="website",
                   effective_on=today().isoformat(), source="form")  # fmt: skip
    assert refused.status_code == 403
    assert post(officer, "/consent/export.csv").status_code == 403
    assert signed_in(app, "headteacher").get("/consent/").status_code == 200
    assert app.test_client().get("/consent/").status_code in (302, 401)


def test_a_change_without_a_csrf_token_is_refused(app) -> None:  # type: ignore[no-untyped-def]
    dpo = signed_in(app, "dpo")
    response = dpo.post("/consent/pupil/amy", data={"change": "recorded", "images": "yes", "channels": "website",
                                                    "effective_on": today().isoformat(), "source": "form"})  # fmt: skip
    assert response.status_code == 400
    assert "no consent" in dpo.get("/consent/pupil/amy").get_data(as_text=True)


def test_the_export_lists_every_pupil_and_is_audited(app, url: str) -> None:  # type: ignore[no-untyped-def]
    dpo = signed_in(app, "dpo")
    assert post(dpo, "/consent/pupil/amy", change="recorded", images="yes", video="yes",
                channels=["website", "newsletter"], effective_on=today().isoformat(),
                source="signed form").status_code == 302  # fmt: skip
    exported = post(signed_in(app, "headteacher"), "/consent/export.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = {r["Username"]: r for r in csv.DictReader(io.StringIO(exported.get_data(as_text=True)))}
    assert set(rows) == {"amy", "ben"}
    assert (rows["amy"]["Images"], rows["amy"]["Video"], rows["amy"]["school social media"]) == ("yes", "yes", "no")
    assert rows["ben"]["Images"] == "no" and rows["ben"]["Pupil"] == "'=Ben Formula"
    printed = dpo.get("/consent/print")
    assert printed.status_code == 200 and "Amy Pupil" in printed.get_data(as_text=True)
    assert dpo.get("/consent/print.css").mimetype == "text/css"
    assert audit_actions(url).count("consent_exported") == 2


def test_the_headteacher_approves_school_devices_only(app, url: str) -> None:  # type: ignore[no-untyped-def]
    head = signed_in(app, "headteacher")
    engine = make_engine(url)
    with Session(engine) as s:
        ids = {d.name: d.id for d in s.scalars(select(DeviceRecord))}
    assert "Approve Office-iPad" in head.get("/devices/").get_data(as_text=True)
    assert post(head, f"/devices/{ids['Office-iPad']}/approve").status_code == 302
    refused = post(head, f"/devices/{ids['Khan-phone']}/approve")
    assert refused.status_code == 400 and "personal device" in refused.get_data(as_text=True)
    assert post(signed_in(app, "dpo"), f"/devices/{ids['Office-iPad']}/withdraw").status_code == 403
    with Session(engine) as s:
        office = s.get(DeviceRecord, ids["Office-iPad"])
        assert office is not None and office.approved_by == "headteacher" and office.approved_at is not None
        # A later import that makes it personal takes the approval away.
        import_devices(s, [Device("Office-iPad", "aa:bb:cc:00:00:12", "ipad", personal=True, username="mrs.k")])
        s.commit()
        assert s.get(DeviceRecord, ids["Office-iPad"]).approved_at is None  # type: ignore[union-attr]
    engine.dispose()
    assert "device_approved" in audit_actions(url)


def test_the_dpo_sees_the_uploads(app, url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    writer = AccessLogWriter(url, tmp_path / "upload-spool").start()
    staff = Identity(group="staff", username="mrs.k", display_name="Helen Khan", device="Office-iPad")
    decision = Decision(Action.ALLOW, Source.RULE, "ok", PeriodKind.LESSON, "social.example")
    row = access_row(identity=staff, decision=decision, instant=datetime.now(UTC), method="POST", scheme="https",
                     host="social.example", path=f"/upload/{XSS}", query="", status=200, size=10, keep_query=False,
                     site=None)  # fmt: skip
    row["upload"] = {"outcome": "posted", "refusal": None, "media": "image/jpeg", "detected_by": "content-type",
                     "filename": XSS, "bytes": 2048}  # fmt: skip
    writer.submit(row)
    writer.close()
    page = signed_in(app, "dpo").get("/uploads/").get_data(as_text=True)
    assert "Helen Khan" in page and "Office-iPad" in page and "image/jpeg" in page and "posted" in page
    assert XSS not in page and "mrs.k" in page
    assert signed_in(app, "teacher").get("/uploads/").status_code == 403
    assert signed_in(app, "officer").get("/uploads/").status_code == 403
    assert "uploads_viewed" in audit_actions(url)
