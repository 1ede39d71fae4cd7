"""`gateway check --user` says when the person is on supervised-only access, and decides as the proxy does: the ban
blocks outside a supervised session, the normal rules decide during one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from gateway.store.bans import ban_person, start_supervision
from gateway.store.engine import make_engine
from tests.test_check_cli import check_json, gateway
from tests.support.policies import DEMO_POLICY


def test_check_says_a_person_is_banned_and_decides_as_the_proxy(tmp_path):
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    roster = tmp_path / "roster.csv"
    roster.write_text("Username,Display name,Group,Year group,Class\namy.p,Amy Pupil,pupil,Year 6,6B\n")
    assert gateway("db", "upgrade", "--db", db).returncode == 0
    assert gateway("roster", "import", "--db", db, "--policy", str(DEMO_POLICY), str(roster)).returncode == 0
    before = check_json("--db", db, "--user", "amy.p", "--at", "2026-09-07T09:30", "https://www.bbc.co.uk/")
    assert (before["action"], before["ban"]) == ("allow", None)

    now = datetime.now(UTC)
    engine = make_engine(db)
    with Session(engine) as session:
        ban = ban_person(session, username="amy.p", display_name="Amy Pupil", reason="DoH", created_by="head",
                         now=now, ends_at=now + timedelta(days=14))  # fmt: skip
        session.commit()
        ban_id = ban.id
    banned = check_json("--db", db, "--user", "amy.p", "--at", "2026-09-07T09:30", "https://www.bbc.co.uk/")
    assert (banned["action"], banned["source"], banned["ban"]["id"], banned["ban"]["supervised_until"]) == (
        "block", "ban", ban_id, None)
    human = gateway("check", "--policy", str(DEMO_POLICY), "--db", db, "--user", "amy.p", "https://www.bbc.co.uk/")
    assert human.stdout.startswith("BLOCK")
    assert f"ban:     supervised-only access (ban {ban_id}), until " in human.stdout

    with Session(engine) as session:
        start_supervision(session, username="amy.p", teacher="mr.jones", ends_at=now + timedelta(hours=1), note=None,
                          now=now)  # fmt: skip
        session.commit()
    engine.dispose()
    supervised = check_json("--db", db, "--user", "amy.p", "--at", "2026-09-07T09:30", "https://www.bbc.co.uk/")
    assert supervised["action"] == "allow" and supervised["ban"]["supervised_until"] is not None
    human = gateway("check", "--policy", str(DEMO_POLICY), "--db", db, "--user", "amy.p", "https://www.bbc.co.uk/")
    assert "supervised session running until" in human.stdout
