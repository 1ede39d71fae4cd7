"""Every change is in the audit trail with who, when and what: the CLI's changes (run as real commands) and the
policies a running gateway loads or refuses (a real mitmdump reloading its policy file)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.store.audit import audit_values
from gateway.store.audit_outbox import AuditOutbox
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.audit import AuditEvent
from tests.store.databases import TcpRelay, pg_schema_url  # noqa: F401  (fixture)
from tests.support.mitmdump import Mitmdump
from tests.support.policies import DEMO_POLICY, ROOT, demo_policy_files

ROSTER = (
    "UPN,Forename,Surname,Filter Group,NC Year,Reg Group\n"
    "amy,Amy,Jones,pupil,Year 5,5B\n"
    "ben,Ben,Smith,pupil,Year 5,5B\n"
    "mrs.patel,Asha,Patel,staff,,\n"
)
DEVICES = "Device Name,MAC Address,Type,Ownership,Assigned To,Class\niPad-5B-01,AA:BB:CC:00:00:01,iPad,school,,5B\n"


def gateway(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    env.pop("GATEWAY_DB", None)
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)  # fmt: skip


def audit_rows(url: str) -> list[AuditEvent]:
    engine = make_engine(url)
    with engine.connect() as c:
        rows = list(c.execute(select(AuditEvent).order_by(AuditEvent.id)))
    engine.dispose()
    return rows


def test_cli_changes_are_audited_with_who_and_what_never_the_secret(tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER)
    devices = tmp_path / "devices.csv"
    devices.write_text(DEVICES)
    db = ("--db", url)
    for args in (
        ("roster", "import", *db, "--policy", str(DEMO_POLICY), str(roster)),
        ("roster", "import", *db, "--policy", str(DEMO_POLICY), "--dry-run", str(roster)),
        ("devices", "import", *db, "--policy", str(DEMO_POLICY), str(devices)),
        ("roster", "set-password", *db, "amy", "--password", "pony-rainbow-42"),
        ("roster", "picture-codes", *db, "--class", "5B"),
        ("users", "add", *db, "head", "--role", "headteacher", "--password", "a long enough secret"),
    ):
        run = gateway(*args, env={"SUDO_USER": "asha"})
        assert run.returncode == 0, run.stderr
    roster.write_text(ROSTER.replace("ben,Ben,Smith,pupil,Year 5,5B\n", ""))
    assert gateway("roster", "import", *db, "--policy", str(DEMO_POLICY), str(roster)).returncode == 0

    rows = audit_rows(url)
    assert all(r.action == "change" and r.actor.startswith("cli:") for r in rows)
    assert "(sudo by asha)" in rows[0].actor
    first, devices_row, password, pictures, user, second = rows  # the dry run recorded nothing
    detail = json.loads(first.detail)
    assert (first.target, detail["command"], detail["added"], detail["left"]) == ("roster", "roster import", 3, 0)
    assert detail["file"] == str(roster) and len(detail["sha256"]) == 64
    assert json.loads(second.detail)["left"] == 1
    assert json.loads(second.detail)["sha256"] == hashlib.sha256(roster.read_bytes()).hexdigest()
    assert devices_row.target == "devices" and json.loads(devices_row.detail)["added"] == 1
    assert password.target == "person:amy" and "pony-rainbow" not in password.detail
    assert pictures.target == "class:5B" and json.loads(pictures.detail)["people"] == ["amy", "ben"]
    assert user.target == "console_user:head" and "secret" not in user.detail
    assert all(r.at is not None for r in rows)


def test_lists_import_and_policy_reload_are_audited_and_work_without_a_database(tmp_path):
    source = tmp_path / "ut1"
    (source / "vpn").mkdir(parents=True)
    (source / "vpn" / "domains").write_text("nordvpn.com\nexpressvpn.com\n")
    (source / "vpn" / "usage").write_text("black\n")
    into = tmp_path / "lists"

    # A laptop with no gateway database: a warning, the work done, no database file made.
    run = gateway("lists", "import", str(source), "--into", str(into), "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert run.returncode == 0 and "warning: not recorded in the audit trail (no database" in run.stderr
    assert (into / "vpn" / "domains").exists() and not (tmp_path / "none.db").exists()
    unmigrated = f"sqlite:///{tmp_path / 'empty.db'}"
    make_engine(unmigrated).connect().close()
    run = gateway("policy", "reload", "--db", unmigrated, str(DEMO_POLICY))
    assert run.returncode == 0 and "not migrated" in run.stderr and "valid" in run.stdout
    run = gateway("policy", "reload", "--db", "postgresql://nobody@127.0.0.1:9/none", str(DEMO_POLICY))
    assert run.returncode == 0 and "not reachable" in run.stderr

    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    assert gateway("lists", "import", str(source), "--into", str(into), "--db", url).returncode == 0
    assert gateway("policy", "reload", "--db", url, str(DEMO_POLICY)).returncode == 0
    lists_row, policy_row = audit_rows(url)
    detail = json.loads(lists_row.detail)
    assert lists_row.target == f"lists:{into}" and detail["source"] == str(source)
    assert detail["categories"] == {"vpn": {"domains": 2, "urls": 0, "bad_lines": 0}}
    detail = json.loads(policy_row.detail)
    assert policy_row.target == "policy" and detail["sha256"] == hashlib.sha256(DEMO_POLICY.read_bytes()).hexdigest()
    assert "rules" in detail["summary"]


def wait_for_audit(url: str, action: str, count: int, timeout: float = 20.0) -> list[AuditEvent]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in audit_rows(url) if r.action == action]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


@pytest.mark.e2e
def test_the_proxy_audits_each_policy_it_loads_or_refuses_with_a_diff(tmp_path):
    demo_policy_files(tmp_path)
    policy = tmp_path / "policy.yaml"
    good = DEMO_POLICY.read_text()
    policy.write_text(good)
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    proxy = Mitmdump(
        ["addons/gateway.py"],
        {"gateway_policy": policy, "gateway_db": url, "gateway_spool": tmp_path / "spool", "gateway_site": "Main site",
         "gateway_reload_interval_ms": 200},  # fmt: skip
        workdir=tmp_path,
        ready_line=r"policy .* loaded",
    ).start()
    try:
        changed = good.replace("lists: [social_media_other]\n    action: block",
                               "lists: [social_media_other]\n    action: allow")  # fmt: skip
        assert changed != good
        policy.write_text(changed)
        loaded = wait_for_audit(url, "policy-loaded", 1)
        assert loaded, proxy.output()[-3000:]
        time.sleep(0.3)  # a new mtime for the next write
        policy.write_text(changed.replace("action: allow", "action: obliterate", 1))
        rejected = wait_for_audit(url, "policy-rejected", 1)
        assert rejected, proxy.output()[-3000:]
    finally:
        proxy.stop()
    row = loaded[0]
    detail = json.loads(row.detail)
    assert (row.actor, row.target) == ("gateway:Main site", "policy")
    assert detail["sha256"] == hashlib.sha256(changed.encode()).hexdigest()
    assert "-    action: block" in detail["diff"] and "+    action: allow" in detail["diff"]
    assert len(detail["diff"]) < 1000, "a compact diff, not the file"
    detail = json.loads(rejected[0].detail)
    assert "+    action: obliterate" in detail["diff"] and "-    action: allow" in detail["diff"]
    assert any("action" in e for e in detail["errors"])
    assert len(audit_rows(url)) == 2, "one row per change, not one per check"


def test_audit_rows_wait_on_disk_while_the_database_is_away(pg_schema_url, tmp_path):  # noqa: F811
    from sqlalchemy.engine import make_url

    admin, url = pg_schema_url
    upgrade(url)
    target = make_url(url)
    relay = TcpRelay((target.host, target.port))
    relayed = url.replace(f"{target.host}:{target.port}", f"127.0.0.1:{relay.port}")
    outbox = AuditOutbox(relayed, tmp_path / "audit")
    outbox.add(audit_values("gateway:test", "policy-loaded", target="policy", detail={"sha256": "x"}))
    assert outbox.waiting and len(outbox.spool.pending()) == 1
    assert audit_rows(url) == []
    relay.up()
    try:
        assert AuditOutbox(relayed, tmp_path / "audit").flush() == 1, "a restarted proxy delivers what was left"
    finally:
        relay.down()
    rows = audit_rows(url)
    assert [(r.actor, r.action) for r in rows] == [("gateway:test", "policy-loaded")]
    assert outbox.spool.pending() == []
