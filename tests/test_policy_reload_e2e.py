"""A running gateway handed a damaged policy keeps filtering with the policy it runs: a list file overwritten with
random bytes or garbage, a list emptied, a YAML bomb, an exception aimed at Facebook. Each is refused, logged and
audited, and a pupil still gets the block page for Facebook. Real mitmdump, real HTTPS origin, real clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, select

from gateway.store.migrate import upgrade
from gateway.store.models.audit import AuditEvent
from tests.support.clients import httpx_client
from tests.support.mitmdump import Mitmdump
from tests.support.policies import ROOT, demo_policy_with_devices
from tests.test_policy_hardening import BILLION_LAUGHS

pytestmark = pytest.mark.e2e

PUPIL = "127.0.0.2"
MONDAY_LESSON = "2026-09-07T09:30"
PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}
REFUSED = r"policy reload failed; the running policy stays in force"
LOADED = r"policy .* loaded"


def demo_copy_with_pupil_device(folder: Path) -> Path:
    """The demo policy and a copy of its lists (the test damages them), with one loopback address as a pupil."""
    return demo_policy_with_devices(folder, {PUPIL: "pupil"}, copy_lists=True)


@pytest.fixture
def gateway(tmp_path, origin):
    policy = demo_copy_with_pupil_device(tmp_path)
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(db)
    proxy = Mitmdump(
        ["addons/gateway.py"],
        {"gateway_policy": policy, "gateway_now": MONDAY_LESSON, "gateway_db": db, "gateway_spool": tmp_path / "spool",
         "gateway_reload_interval_ms": 100},
        workdir=tmp_path, origin=origin, ready_line=LOADED,
    ).start()  # fmt: skip
    yield proxy
    proxy.stop()


def facebook_status(proxy: Mitmdump) -> int:
    with httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=PUPIL) as http:
        return http.get("https://www.facebook.com/", headers=PAGE).status_code


def refused(proxy: Mitmdump, change) -> str:  # type: ignore[no-untyped-def]
    """Make a change to the running gateway's files; the log of the refusal that follows."""
    mark = proxy.mark()
    change()
    failure = proxy.wait_for_output(REFUSED, after=mark)
    return proxy.output()[failure.start():]


def restored(proxy: Mitmdump, change) -> None:  # type: ignore[no-untyped-def]
    mark = proxy.mark()
    change()
    proxy.wait_for_output(LOADED, after=mark)


def rejections(folder: Path) -> list[dict]:
    """The policy-rejected rows of the gateway's audit trail, once its outbox has delivered them."""
    engine = create_engine(f"sqlite:///{folder / 'gateway.db'}")
    with engine.connect() as db:
        rows = db.execute(select(AuditEvent.detail).where(AuditEvent.action == "policy-rejected")).scalars().all()
    engine.dispose()
    return [json.loads(row) for row in rows]


def test_corrupt_list_files_are_refused_and_facebook_stays_blocked(gateway, tmp_path):
    listed = tmp_path / "lists" / "social_media_named.txt"
    good = listed.read_bytes()
    assert facebook_status(gateway) == 403
    # The demo ships without the licensed lists: the start-up log says so loudly.
    assert "THE ILLEGAL-CONTENT SLOT IS EMPTY" in gateway.output()

    log = refused(gateway, lambda: listed.write_bytes(os.urandom(5000)))
    assert f"{listed}:" in log and "lists.social_media_named.files.0" in log
    assert facebook_status(gateway) == 403

    restored(gateway, lambda: listed.write_bytes(good))
    log = refused(gateway, lambda: listed.write_text("<html><head><title>502 Bad Gateway</title></head></html>\n"))
    assert f"{listed}:1: lists.social_media_named.files.0: not a valid domain" in log
    assert facebook_status(gateway) == 403

    # An exception for the headteacher aimed at Facebook is refused the same way.
    policy = tmp_path / "policy.yaml"
    restored(gateway, lambda: listed.write_bytes(good))
    lift = ("exceptions:\n"
            "  - {id: head, users: [head], lists: [social_media_named], expires: 2030-01-01T00:00, reason: x}\n")
    log = refused(gateway, lambda: policy.write_text(policy.read_text().replace("exceptions: []\n", lift)))
    assert "exceptions.0.lists.0: list 'social_media_named' is marked unliftable" in log
    assert facebook_status(gateway) == 403


def test_an_emptied_list_is_refused_until_the_operator_confirms(gateway, tmp_path):
    listed = tmp_path / "lists" / "social_media_named.txt"
    # An emptied social-media list also breaks the demo's expected decisions (tests/test_policy_expectations_e2e.py);
    # only the shrink check is under test here.
    policy = tmp_path / "policy.yaml"
    data = yaml.safe_load(policy.read_text())
    del data["expect"]
    restored(gateway, lambda: policy.write_text(yaml.safe_dump(data)))
    log = refused(gateway, lambda: listed.write_text(""))
    assert "lists.social_media_named: list 'social_media_named' would go from 22 to 0 entries (emptied)" in log
    assert "--confirm-shrink" in log
    assert facebook_status(gateway) == 403
    # The refusal is in the audit trail, with the reason.
    rows = rejections(tmp_path)
    for _ in range(100):
        if rows:
            break
        time.sleep(0.1)
        rows = rejections(tmp_path)
    assert any("emptied" in error for row in rows for error in row["errors"]), rows

    # The operator means it: confirmed through the command a school runs, the gateway loads the emptied list.
    mark = gateway.mark()
    confirm = subprocess.run(
        [sys.executable, "-m", "gateway", "policy", "reload", "--confirm-shrink", "--db",
         f"sqlite:///{tmp_path / 'gateway.db'}", str(tmp_path / "policy.yaml")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert confirm.returncode == 0, confirm.stderr
    gateway.wait_for_output(LOADED, after=mark)
    assert facebook_status(gateway) == 200


def test_a_yaml_bomb_is_refused_without_growing_the_proxy(gateway, tmp_path):
    policy = tmp_path / "policy.yaml"
    good = policy.read_text()
    before = rss_kib(gateway)
    log = refused(gateway, lambda: policy.write_text(good + BILLION_LAUGHS))
    assert f"{policy}:" in log and "once aliases are expanded" in log
    assert facebook_status(gateway) == 403
    assert rss_kib(gateway) - before < 50 * 1024
    restored(gateway, lambda: policy.write_text(good))
    assert facebook_status(gateway) == 403


def rss_kib(proxy: Mitmdump) -> int:
    assert proxy.process is not None
    status = Path(f"/proc/{proxy.process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
