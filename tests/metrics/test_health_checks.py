"""`gateway health`'s checks on real files: a database nobody migrated, a CA near its end, rows waiting on disk
(recent, old, in the audit outbox, in a worker's folder), a policy that no longer loads."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.health.checks import Limits, Status, check_backlog, check_ca, check_database, check_policy, spooled
from gateway.store.migrate import upgrade
from tests.support.policies import write_policy


def ca_ending_in(folder: Path, days: int) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway test CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days, hours=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    path = folder / f"ca-{days}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_database_nobody_migrated_is_critical_and_says_what_to_run(tmp_path):
    sqlite3.connect(tmp_path / "gateway.db").close()
    check = check_database(f"sqlite:///{tmp_path / 'gateway.db'}")
    assert check.status is Status.CRITICAL and check.summary == "not migrated (run `gateway db upgrade`)"
    upgrade(f"sqlite:///{tmp_path / 'gateway.db'}")
    assert check_database(f"sqlite:///{tmp_path / 'gateway.db'}").status is Status.OK


def test_a_missing_database_file_is_critical_and_not_made(tmp_path):
    check = check_database(f"sqlite:///{tmp_path / 'nowhere.db'}")
    assert check.status is Status.CRITICAL and not (tmp_path / "nowhere.db").exists()


def test_the_ca_warns_a_month_ahead_and_is_critical_in_its_last_week(tmp_path):
    limits = Limits()
    assert check_ca(ca_ending_in(tmp_path, 400), limits).status is Status.OK
    soon = check_ca(ca_ending_in(tmp_path, 20), limits)
    assert soon.status is Status.WARNING and "in 20 days" in soon.summary and "install it on devices" in soon.summary
    assert check_ca(ca_ending_in(tmp_path, 3), limits).status is Status.CRITICAL
    assert check_ca(tmp_path / "missing.pem", limits).status is Status.WARNING


def test_rows_waiting_on_disk_warn_and_turn_critical_with_age(tmp_path):
    spool = tmp_path / "spool"
    (spool / "audit").mkdir(parents=True)
    (spool / "rejected").mkdir()
    (spool / "worker-1").mkdir()
    (spool / "0000000000000001.abc.jsonl").write_text("{}\n")
    (spool / "worker-1" / "0000000000000002.jsonl").write_text("{}\n")
    (spool / "audit" / "0000000000000001.jsonl").write_text("{}\n")
    (spool / "0000000000000003.abc.tmp").write_text("half a batch")  # a batch being written is not waiting yet
    waiting = spooled(spool)
    assert waiting["access"][0] == 2 and waiting["audit"][0] == 1 and waiting["rejected"] == (0, 0.0)
    limits = Limits(spool_critical_age=3600)
    assert check_backlog("spool", waiting["access"], "batches", limits).status is Status.WARNING
    assert check_backlog("rejected", waiting["rejected"], "rows", limits).status is Status.OK
    two_hours_ago = time.time() - 7200
    os.utime(spool / "worker-1" / "0000000000000002.jsonl", (two_hours_ago, two_hours_ago))
    old = check_backlog("spool", spooled(spool)["access"], "batches", limits)
    assert old.status is Status.CRITICAL and old.summary == "2 batches waiting, the oldest 2.0 h old"


def test_a_policy_that_no_longer_loads_is_a_warning_naming_its_line(tmp_path):
    policy = write_policy(tmp_path)
    good, group = check_policy(policy)
    assert good.status is Status.OK and group == "guest"
    policy.write_text(policy.read_text() + "rules: [{id: x, action: maybe}]\n")
    bad, group = check_policy(policy)
    assert bad.status is Status.WARNING and group is None
    assert "policy.yaml" in bad.summary and "a worker restarted now would not start" in bad.summary
