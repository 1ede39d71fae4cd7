"""A trust's schools import their rosters and device registers into one store: `gateway roster import --site` is
one school's roster, so it never marks another school's people as left nor drops their class teachers, and
`gateway devices import --site` one school's register, retiring only its devices. The commands run in-process on a
real SQLite store."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cli.main import cli
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.devices import DeviceRecord
from gateway.store.models.people import PersonRecord
from gateway.store.teaching import classes_taught

POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
HEADER = "username,name,group,year group,class,teaches\n"


def roster_import(url: str, path: Path, *site: str) -> str:
    result = CliRunner().invoke(cli, ["roster", "import", "--db", url, "--policy", str(POLICY),
                                      *(["--site", site[0]] if site else []), str(path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def people(url: str) -> dict[str, tuple[bool, str | None]]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return {r.username: (r.active, r.site) for r in s.scalars(select(PersonRecord))}
    finally:
        engine.dispose()


def teaches(url: str, username: str) -> list[str]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return [f"{c.site}:{c.name}" for c in classes_taught(s, username)]
    finally:
        engine.dispose()


def test_one_schools_roster_leaves_the_other_schools_people_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trust.db'}"
    upgrade(url)
    oakfield, riverside = tmp_path / "oakfield.csv", tmp_path / "riverside.csv"
    oakfield.write_text(HEADER + "amy,Amy,pupil,5,5B,\nmrs.k,Helen Khan,staff,,,5B\n")
    riverside.write_text(HEADER + "ben,Ben,pupil,4,4A,\nmr.b,Bob Brown,staff,,,4A\n")
    roster_import(url, oakfield, "oakfield")
    roster_import(url, riverside, "riverside")
    assert people(url) == {"amy": (True, "oakfield"), "mrs.k": (True, "oakfield"),
                           "ben": (True, "riverside"), "mr.b": (True, "riverside")}  # fmt: skip
    assert (teaches(url, "mrs.k"), teaches(url, "mr.b")) == (["oakfield:5B"], ["riverside:4A"])

    # Amy leaves Oakfield: its next roster marks her as left, and Riverside's people stay as they were.
    oakfield.write_text(HEADER + "mrs.k,Helen Khan,staff,,,5B; 6B\n")
    assert "marked as left: amy" in roster_import(url, oakfield, "oakfield")
    assert people(url)["amy"] == (False, "oakfield")
    assert people(url)["ben"] == (True, "riverside") and teaches(url, "mr.b") == ["riverside:4A"]
    assert teaches(url, "mrs.k") == ["oakfield:5B", "oakfield:6B"]

    # Ben moves to Oakfield: he is Oakfield's now, and Riverside's next roster (without him) leaves him active.
    oakfield.write_text(HEADER + "mrs.k,Helen Khan,staff,,,5B\nben,Ben,pupil,4,5B,\n")
    roster_import(url, oakfield, "oakfield")
    riverside.write_text(HEADER + "mr.b,Bob Brown,staff,,,4A\n")
    roster_import(url, riverside, "riverside")
    assert people(url)["ben"] == (True, "oakfield")


def test_without_a_site_the_file_is_the_whole_roster_as_before(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'school.db'}"
    upgrade(url)
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + "amy,Amy,pupil,5,5B,\nben,Ben,pupil,4,4A,\n")
    roster_import(url, roster)
    roster.write_text(HEADER + "ben,Ben,pupil,4,4A,\n")
    assert "marked as left: amy" in roster_import(url, roster)
    # Everyone imported belongs to the policy's school.
    assert people(url) == {"amy": (False, "perryfields"), "ben": (True, "perryfields")}


def test_a_class_is_a_name_at_one_school(tmp_path: Path) -> None:
    """Both schools have a 5B: each school's teacher is the teacher of their own 5B only, and a teacher in both
    schools' rosters teaches at both, whichever roster came last."""
    url = f"sqlite:///{tmp_path / 'trust.db'}"
    upgrade(url)
    oakfield, riverside = tmp_path / "oakfield.csv", tmp_path / "riverside.csv"
    oakfield.write_text(HEADER + "amy,Amy,pupil,5,5B,\nmrs.k,Helen Khan,staff,,,5B\nmr.m,Sam Music,staff,,,5B\n")
    riverside.write_text(HEADER + "ben,Ben,pupil,5,5B,\nmr.b,Bob Brown,staff,,,5B\nmr.m,Sam Music,staff,,,5B\n")
    roster_import(url, oakfield, "oakfield")
    roster_import(url, riverside, "riverside")
    assert teaches(url, "mrs.k") == ["oakfield:5B"] and teaches(url, "mr.b") == ["riverside:5B"]
    assert teaches(url, "mr.m") == ["oakfield:5B", "riverside:5B"]
    # Oakfield's next roster: Mr M now teaches 6B there, and still Riverside's 5B.
    oakfield.write_text(HEADER + "amy,Amy,pupil,5,5B,\nmrs.k,Helen Khan,staff,,,5B\nmr.m,Sam Music,staff,,,6B\n")
    roster_import(url, oakfield, "oakfield")
    assert teaches(url, "mr.m") == ["riverside:5B", "oakfield:6B"] and teaches(url, "mr.b") == ["riverside:5B"]


def test_one_schools_device_register_retires_only_its_own_devices(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trust.db'}"
    upgrade(url)
    oakfield, riverside = tmp_path / "oakfield.csv", tmp_path / "riverside.csv"
    oakfield.write_text("name,mac,class\nipad-o1,aa:bb:cc:00:00:01,5B\nipad-o2,aa:bb:cc:00:00:02,5B\n")
    riverside.write_text("name,mac,class\nipad-r1,aa:bb:cc:00:01:01,4A\n")

    def devices_import(path: Path, *site: str) -> None:
        result = CliRunner().invoke(cli, ["devices", "import", "--db", url, "--policy", str(POLICY),
                                          *(["--site", site[0]] if site else []), str(path)])  # fmt: skip
        assert result.exit_code == 0, result.output

    def register() -> dict[str, tuple[bool, str | None]]:
        engine = make_engine(url)
        try:
            with Session(engine) as s:
                return {r.name: (r.active, r.site) for r in s.scalars(select(DeviceRecord))}
        finally:
            engine.dispose()

    devices_import(oakfield, "oakfield")
    devices_import(riverside, "riverside")
    assert register() == {"ipad-o1": (True, "oakfield"), "ipad-o2": (True, "oakfield"),
                          "ipad-r1": (True, "riverside")}  # fmt: skip
    # Oakfield retires an iPad: Riverside's stays in service.
    oakfield.write_text("name,mac,class\nipad-o1,aa:bb:cc:00:00:01,5B\n")
    devices_import(oakfield, "oakfield")
    assert register() == {"ipad-o1": (True, "oakfield"), "ipad-o2": (False, "oakfield"),
                          "ipad-r1": (True, "riverside")}  # fmt: skip
    # Without --site the file is the whole register, of the policy's school.
    devices_import(riverside)
    assert register() == {"ipad-o1": (False, "oakfield"), "ipad-o2": (False, "oakfield"),
                          "ipad-r1": (True, "perryfields")}  # fmt: skip
