"""Guessing at staff passwords through the proxy, as the school must see it: a real proxy asking shared desktops
for their roster password, a pupil's device guessing a teacher's (and a script minting usernames), and the audit
trail the console shows: one row per device and account per window, with the school's site, counting wrong
passwords and attempts refused over the limit, never a password; kept on disk while the database cannot take it,
and delivered once it can."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.credentials import hash_secret
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.store.accounts import create_user
from gateway.store.models.audit import AuditEvent
from gateway.store.models.people import PersonRecord
from gateway.web.app import ConsoleConfig, create_app
from tests.support.clients import curl
from tests.support.console import PASSWORD, signed_in
from tests.support.policies import PROXY_AUTH_POLICY

pytestmark = pytest.mark.e2e

GUESSER, TEACHER, MINTER = "127.0.0.70", "127.0.0.71", "127.0.0.72"
SITE = "hillside"
ACTION = "proxy_sign_in_failed"


def basic(username: str, password: str) -> dict[str, str]:
    return {"Proxy-Authorization": f"Basic {base64.b64encode(f'{username}:{password}'.encode()).decode()}"}


def seed(store: sessionmaker[Session]) -> None:
    with store.begin() as s:
        import_people(s, [Person("mrp", "Raj Patel", "staff"), Person("ben", "Ben Smith", "pupil")])
        for username, password in (("mrp", "correct horse"), ("ben", "ben's own")):
            s.scalars(select(PersonRecord).where(PersonRecord.username == username)).one().password_hash = (
                hash_secret(password))
        # The audit trail is the headteacher's and the DPO's to read (`gateway.web.roles`).
        create_user(s, "head", "Headteacher", "headteacher", PASSWORD)


def start(tmp_path: Path, mitmdump_proxy, origin, store_url: str, window: int):  # type: ignore[no-untyped-def]
    (tmp_path / "lists").mkdir(exist_ok=True)
    policy = tmp_path / "policy.yaml"
    policy.write_text(PROXY_AUTH_POLICY.replace("contact: the e-safety officer}",
                                                f"contact: the e-safety officer, site: {SITE}}}", 1))  # fmt: skip
    return mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": store_url, "gateway_spool": str(tmp_path / "spool"),
        "gateway_proxy_auth": "roster", "gateway_proxy_auth_clients": ",".join((GUESSER, TEACHER, MINTER)),
        "gateway_proxy_auth_window_seconds": window,
    }, origin=origin, ready_line="identity sources running")  # fmt: skip


def rows(store: sessionmaker[Session]) -> list[AuditEvent]:
    with store() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == ACTION).order_by(AuditEvent.id)))


def test_guessing_at_a_teachers_password_is_one_audit_row_per_device_and_account(
        tmp_path: Path, mitmdump_proxy, origin_http, store_url: str, store: sessionmaker[Session]) -> None:  # fmt: skip
    seed(store)
    proxy = start(tmp_path, mitmdump_proxy, origin_http, store_url, window=300)

    def get(device: str, username: str, password: str) -> int:
        return curl("http://learn.example/", proxy=proxy.proxy_url, source_address=device,
                    headers=basic(username, password)).status

    # The pupil guesses Mr Patel's password: five wrong answers, then three turned away over the limit; and a
    # name with markup in it, twice.
    guesses = [f"guess-{n}-Tr0ub4dor" for n in range(8)]
    assert [get(GUESSER, "mrp", g) for g in guesses] == [407] * 8
    assert [get(GUESSER, "<b>ben</b>", f"guess-{n}-ben") for n in range(2)] == [407] * 2
    # Mr Patel at his own desk gets in; a right password is nobody's business.
    assert get(TEACHER, "MRP", "correct horse") == 200
    # A script mints fifty usernames from one device: ten wrong passwords, then the device is refused outright.
    with ThreadPoolExecutor(4) as pool:
        minted = list(pool.map(lambda n: get(MINTER, f"user{n:02}", "hunter2-minted"), range(50)))
    assert minted == [407] * 50
    assert rows(store) == [], "one row per window, not one per attempt"

    # The proxy stopping records the windows still open.
    proxy.stop()
    found = rows(store)
    by = {(r.client_ip, r.target): r for r in found}
    mrp = by[(GUESSER, "person:mrp")]
    assert (mrp.actor, mrp.site) == (f"gateway:{SITE}", SITE)
    assert '"summary": "8 failed proxy sign-ins for account mrp from 127.0.0.70 in 5 min, limited: 3 turned away ' \
           'without checking the password (too many wrong passwords for this account from this device)"' in mrp.detail
    assert '"wrong_passwords": 5' in mrp.detail and '"refused": 3' in mrp.detail
    assert '"summary": "2 failed proxy sign-ins for account <b>ben</b> from 127.0.0.70 in 5 min"' in \
           by[(GUESSER, "person:<b>ben</b>")].detail
    assert not any(r.client_ip == TEACHER for r in found)
    # The script: ten accounts a row each, the rest together, however many names it minted; every attempt counted.
    mine = [json.loads(r.detail) for r in found if r.client_ip == MINTER]
    assert len(mine) == 11, [r.target for r in found if r.client_ip == MINTER]
    assert sum(d["wrong_passwords"] for d in mine) == 10 and sum(d["refused"] for d in mine) == 40
    assert " for other accounts from 127.0.0.72 in 5 min, limited: " in json.loads(by[(MINTER, "people")].detail)[
        "summary"]
    # Never a password typed.
    text = " ".join(f"{r.target} {r.detail}" for r in found)
    for secret in [*guesses, "guess-0-ben", "hunter2-minted", "correct horse"]:
        assert secret not in text

    # The console's audit trail shows it as a sentence, the markup typed as a username shown as text.
    app = create_app(ConsoleConfig(db_url=store_url, secret_key_file=str(tmp_path / "secret")))
    page = signed_in(app, "head").get(f"/audit?action={ACTION}").get_data(as_text=True)
    assert ("8 failed proxy sign-ins for account mrp from 127.0.0.70 in 5 min, limited: 3 turned away without "
            "checking the password (too many wrong passwords for this account from this device)") in page
    assert "account &lt;b&gt;ben&lt;/b&gt; from 127.0.0.70" in page and "<b>ben</b>" not in page
    assert '"wrong_passwords"' not in page


def test_a_window_that_ends_while_the_database_is_locked_is_kept_on_disk_and_delivered_after(
        tmp_path: Path, mitmdump_proxy, origin_http, store_url: str, store: sessionmaker[Session]) -> None:  # fmt: skip
    seed(store)
    proxy = start(tmp_path, mitmdump_proxy, origin_http, store_url, window=3)
    outbox = tmp_path / "spool" / "audit"
    for n in range(2):
        assert curl("http://learn.example/", proxy=proxy.proxy_url, source_address=GUESSER,
                    headers=basic("mrp", f"guess {n}")).status == 407
    # Another program holds the database's write lock while the window ends.
    database = sqlite3.connect(store_url.removeprefix("sqlite:///"), timeout=30)
    try:
        database.execute("BEGIN IMMEDIATE")
        deadline = time.monotonic() + 30
        while not list(outbox.glob("*.jsonl")):
            assert time.monotonic() < deadline, "the row never reached the outbox"
            time.sleep(0.2)
        kept = next(outbox.glob("*.jsonl")).read_text()
        assert "2 failed proxy sign-ins for account mrp from 127.0.0.70 in 3 s" in kept and "guess" not in kept
        # Meanwhile the proxy answers: the event loop never waits on the database.
        started = time.monotonic()
        assert curl("http://learn.example/", proxy=proxy.proxy_url, source_address=TEACHER,
                    headers=basic("mrp", "correct horse")).status == 200
        assert time.monotonic() - started < 5
        assert database.execute("SELECT count(*) FROM audit_event WHERE action = ?", (ACTION,)).fetchone()[0] == 0
    finally:
        database.rollback()
        database.close()
    deadline = time.monotonic() + 40
    while not rows(store):
        assert time.monotonic() < deadline, "the kept row was never delivered"
        time.sleep(0.3)
    [row] = rows(store)
    assert row.client_ip == GUESSER and row.site == SITE and row.target == "person:mrp"
    assert not list(outbox.glob("*.jsonl"))
