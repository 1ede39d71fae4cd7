"""Roster and device CSV exports: header mapping, bad rows reported by line, nothing half-imported."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.identity.csv_table import CsvImportError
from gateway.identity.devices_csv import normalise_mac, parse_devices
from gateway.identity.people import StaffRole
from gateway.identity.roster_csv import parse_roster, parse_year_group

GROUPS = {"pupil", "staff", "guest", "infants"}
TODAY = date(2026, 11, 26)


def write(tmp_path: Path, text: str, name: str = "export.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_roster_maps_headers_and_ignores_unknown_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\ufeffUPN,Forename,Surname,Filter Group,NC Year,Reg Group,DOB,E-mail,Staff Role,Ethnicity\n"
        "AJones,Amy,Jones,infants,R,RB,14/09/2021,,,White British\n"
        "bsmith,Ben,Smith,pupil,Year 4,4S,2017-03-02,,,\n"
        "mrs.patel,Asha,Patel,staff,,,,a.patel@school.example,headteacher; e-safety officer,\n",
    )
    amy, ben, head = parse_roster(path, GROUPS, TODAY)
    assert (amy.username, amy.display_name, amy.group, amy.year_group, amy.school_class) == (
        "ajones", "Amy Jones", "infants", 0, "RB"
    )
    assert amy.date_of_birth == date(2021, 9, 14)
    assert (ben.year_group, ben.date_of_birth) == (4, date(2017, 3, 2))
    assert head.roles == {StaffRole.HEADTEACHER, StaffRole.E_SAFETY_OFFICER}
    assert head.email == "a.patel@school.example"


def test_roster_reports_every_bad_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "username,display name,group,year group,class,date of birth,email\n"
        "ajones,Amy Jones,pupil,3,3B,2018-01-01,\n"
        "\n"
        "AJONES,Amy Jones again,pupil,3,3B,2018-01-01,\n"
        "cbad,C Bad,wizards,Year 15,3B,31/02/2018,not-an-email\n"
        ",No Name,pupil,3,3B,,\n",
    )
    with pytest.raises(CsvImportError) as e:
        parse_roster(path, GROUPS, TODAY)
    problems = [str(p) for p in e.value.problems]
    assert "line 4: duplicate username 'AJONES' (also on line 2)" in problems
    assert any(p.startswith("line 5: group 'wizards' is not a group the policy defines") for p in problems)
    assert "line 5: year group 'Year 15' is not N, R or 1-13" in problems
    assert any(p.startswith("line 5: date of birth '31/02/2018'") for p in problems)
    assert "line 5: email 'not-an-email' is not an email address" in problems
    assert "line 6: username is empty" in problems


def test_roster_missing_column_and_malformed_csv(tmp_path: Path) -> None:
    with pytest.raises(CsvImportError, match=r"line 1: missing column\(s\): group"):
        parse_roster(write(tmp_path, "username,name\nab,A B\n"), GROUPS, TODAY)
    with pytest.raises(CsvImportError, match="line 3: not valid CSV"):
        parse_roster(write(tmp_path, 'username,group\nab,pupil\n"cd,pupil\n'), GROUPS, TODAY)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("username,group,name\nab,pupil,Zoë\n".encode("latin-1"))
    with pytest.raises(CsvImportError, match="line 2: the file is not UTF-8"):
        parse_roster(latin1, GROUPS, TODAY)


def test_year_groups() -> None:
    assert [parse_year_group(x) for x in ("", "N", "Reception", "Y1", "6", "Year 13")] == [None, -1, 0, 1, 6, 13]


def test_devices_parse_and_validate(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Device Name,MAC Address,Type,Ownership,Assigned To,Class,Trolley,Serial\n"
        "iPad-3B-07,AA-BB-CC-00-00-07,iPad,school,,3B,,X1\n"
        "Chromebook-T1-01,aabb.cc00.0101,chromebook,school,,,Trolley 1,X2\n"
        "Ben phone,AA:BB:CC:00:00:99,phone,personal,BSmith,,,\n",
    )
    ipad, cb, phone = parse_devices(path, known_usernames={"bsmith"})
    assert (ipad.mac, ipad.school_class, ipad.kind, ipad.personal) == ("aa:bb:cc:00:00:07", "3B", "ipad", False)
    assert (cb.mac, cb.trolley) == ("aa:bb:cc:00:01:01", "Trolley 1")
    assert (phone.personal, phone.username) == (True, "bsmith")


def test_devices_bad_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name,mac,owner,assigned to,class\n"
        "iPad-1,aa:bb:cc:00:00:01,school,,3B\n"
        "iPad-2,AA:BB:CC:00:00:01,school,,3B\n"
        "iPad-1,aa:bb:cc:00:00:03,school,,3B\n"
        "Phone,zz:bb:cc:00:00:04,personal,,\n"
        "Laptop,aa:bb:cc:00:00:05,school,nobody,3B\n",
    )
    with pytest.raises(CsvImportError) as e:
        parse_devices(path, known_usernames=set())
    problems = [str(p) for p in e.value.problems]
    assert "line 3: duplicate MAC address aa:bb:cc:00:00:01 (also on line 2)" in problems
    assert "line 4: duplicate device name 'iPad-1' (also on line 2)" in problems
    assert "line 5: MAC address 'zz:bb:cc:00:00:04' is not six hex bytes" in problems
    assert "line 5: a personal device needs the username of its owner" in problems
    assert "line 6: a device is assigned to one of a person, a class or a trolley, not several" in problems
    assert "line 6: username 'nobody' is not in the roster" in problems


def test_normalise_mac() -> None:
    assert normalise_mac("AABB.CCDD.EEFF") == "aa:bb:cc:dd:ee:ff"
    with pytest.raises(ValueError):
        normalise_mac("aa:bb:cc:dd:ee")


def test_the_classes_a_teacher_teaches_come_from_the_roster_and_a_reimport_replaces_them(tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    from gateway.identity.directory import import_people
    from gateway.store.engine import make_engine
    from gateway.store.migrate import upgrade
    from gateway.store.teaching import Taught, classes_taught

    header = "username,name,group,year group,class,teaches\n"
    amy = "amy,Amy,pupil,5,5B,\n"
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    engine = make_engine(url)
    roster = write(tmp_path, header + amy + "Mrs.K,Helen Khan,staff,,,5B; 6B\nmr.t,Tom,staff,,,\n")
    with Session(engine) as s, s.begin():
        import_people(s, parse_roster(roster, GROUPS, TODAY))
    with Session(engine) as s:
        assert (classes_taught(s, "mrs.k"), classes_taught(s, "MR.T"), classes_taught(s, "amy")) == (
            [Taught("", "5B"), Taught("", "6B")], [], [])
    # Next term Mrs Khan teaches 6B alone; Mr T has left and teaches nothing.
    with Session(engine) as s, s.begin():
        import_people(s, parse_roster(write(tmp_path, header + amy + "mrs.k,Helen Khan,staff,,,6B\n"), GROUPS, TODAY))
    with Session(engine) as s:
        assert classes_taught(s, "mrs.k") == [Taught("", "6B")]
    engine.dispose()
    with pytest.raises(CsvImportError, match="line 2: a pupil .* cannot teach classes"):
        parse_roster(write(tmp_path, header + "amy,Amy,pupil,5,5B,5B\n"), GROUPS, TODAY)
