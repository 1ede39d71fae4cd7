"""`gateway consent import`: a school's spreadsheet of consent into the register, every bad line named and nothing
imported unless every row is good; and `gateway devices list` showing ownership and approval."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.cli.main import cli
from gateway.identity.directory import import_devices, import_people
from gateway.identity.people import Device, Person
from gateway.store.consent import register
from gateway.store.models.audit import AuditEvent
from gateway.store.models.consent import ConsentRecord
from tests.support.policies import DEMO_POLICY


def people(store: sessionmaker[Session]) -> None:
    with store.begin() as s:
        import_people(s, [Person("amy", "Amy Pupil", "pupil", year_group=6, school_class="6B"),
                          Person("ben", "Ben Small", "pupil", year_group=2, school_class="2A"),
                          Person("mrs.k", "Helen Khan", "staff")])  # fmt: skip


def run(store_url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [*args[:2], "--db", store_url, "--policy", str(DEMO_POLICY), *args[2:]])


def test_a_spreadsheet_is_imported_and_audited(tmp_path: Path, store_url: str, store) -> None:  # type: ignore[no-untyped-def]
    people(store)
    sheet = tmp_path / "consent.csv"
    sheet.write_text("Pupil,Photos,Video,Where,Date signed,Written source,Change\n"
                     "amy,yes,no,website; newsletter,2026-09-04,signed form 2026-09-04,\n"
                     "ben,y,y,,2026-09-05,signed form,\n"
                     "ben,,,,2026-10-01,email from parent,withdrawn\n")  # fmt: skip
    result = run(store_url, "consent", "import", str(sheet))
    assert result.exit_code == 0, result.output
    assert "3 consent changes imported" in result.output
    with store() as s:
        standing = {p.username: p.summary() for p in register(s, date(2026, 10, 2))}
        assert standing == {"amy": "images: school website, newsletter", "ben": "withdrawn"}
        assert len(list(s.scalars(select(ConsentRecord)))) == 3
        actions = list(s.scalars(select(AuditEvent.action)))
        assert actions.count("consent_recorded") == 2 and "consent_withdrawn" in actions


def test_every_bad_line_is_named_and_nothing_is_imported(tmp_path: Path, store_url: str, store) -> None:  # type: ignore[no-untyped-def]
    people(store)
    sheet = tmp_path / "consent.csv"
    sheet.write_text("username,images,video,date,source\n"
                     "amy,yes,no,2026-09-04,signed form\n"
                     "nobody,yes,no,2026-09-04,signed form\n"
                     "ben,perhaps,no,2026-09-04,signed form\n"
                     "ben,yes,no,4/9/2026,signed form\n"
                     "mrs.k,yes,yes,2026-09-04,signed form\n"
                     "amy,yes,no,2026-09-04,\n")  # fmt: skip
    result = run(store_url, "consent", "import", str(sheet))
    assert result.exit_code == 1
    for line in (3, 4, 5, 6, 7):
        assert f"line {line}:" in result.output
    assert "line 2:" not in result.output and "nothing was imported" in result.output
    with store() as s:
        assert list(s.scalars(select(ConsentRecord))) == []
    missing = tmp_path / "missing.csv"
    missing.write_text("username,images\namy,yes\n")
    assert "missing column(s): date, source" in run(store_url, "consent", "import", str(missing)).output


def test_devices_list_shows_ownership_and_approval(store_url: str, store) -> None:  # type: ignore[no-untyped-def]
    people(store)
    with store.begin() as s:
        import_devices(s, [Device("Office-iPad", "aa:bb:cc:00:00:12", "ipad", username="mrs.k"),
                           Device("Khan-phone", "aa:bb:cc:00:00:13", "phone", personal=True, username="mrs.k")])  # fmt: skip
    result = CliRunner().invoke(cli, ["devices", "list", "--db", store_url])
    assert result.exit_code == 0, result.output
    assert "Office-iPad" in result.output and "school" in result.output and "not approved" in result.output
    assert "Khan-phone" in result.output and "personal" in result.output
