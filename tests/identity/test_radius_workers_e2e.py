"""RADIUS accounting with proxy workers: one worker on the machine listens (the controller sends to one port), and
a device it hears about is known on every worker, through the store; when that worker is killed another takes the
port over."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from pyrad.client import Client
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.radius import radius_dictionary
from tests.identity.test_proxy_identity_e2e import POLICY, SECRET, wait
from tests.support.clients import fetch
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


def accounting_start(port: int, username: str, address: str, session_id: str) -> None:
    client = Client(server="127.0.0.1", acctport=port, secret=SECRET, dict=radius_dictionary(), timeout=3)
    request = client.CreateAcctPacket(User_Name=username)
    request["Acct-Status-Type"] = "Start"
    request["Framed-IP-Address"] = address
    request["Acct-Session-Id"] = session_id
    client.SendPacket(request)


def test_one_worker_hears_radius_every_worker_knows_the_device_and_another_takes_over(
    tmp_path: Path, mitmdump_proxy, origin_http, store_url: str, store: sessionmaker[Session]
) -> None:
    with store.begin() as s:
        import_people(s, [Person("mrp", "Mr Patel", "staff"), Person("ben", "Ben Smith", "pupil", year_group=4)])
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    (tmp_path / "lists").mkdir()
    secret = tmp_path / "radius.secret"
    secret.write_bytes(SECRET + b"\n")
    radius_port = free_port()
    shared = {
        "gateway_policy": str(policy), "gateway_db": store_url, "gateway_spool": str(tmp_path / "spool"),
        "gateway_radius_listen": f"127.0.0.1:{radius_port}", "gateway_radius_secret_file": str(secret),
        "gateway_identity_interval_ms": 200, "termlog_verbosity": "info",
    }  # fmt: skip
    first = mitmdump_proxy(["addons/gateway.py"], {**shared, "gateway_worker": "0"}, origin=origin_http,
                           ready_line=r"RADIUS accounting listening")  # fmt: skip
    second = mitmdump_proxy(["addons/gateway.py"], {**shared, "gateway_worker": "1"}, origin=origin_http,
                            ready_line=r"RADIUS accounting is heard by another worker")  # fmt: skip

    def page(proxy, address: str) -> str:  # type: ignore[no-untyped-def]
        return fetch("http://games.example/", proxy=proxy.proxy_url, source_address=address,
                     headers={"Accept": "text/html"}).text  # fmt: skip

    accounting_start(radius_port, "mrp", "127.0.0.9", "a1")
    for proxy in (first, second):
        assert wait(lambda: "Signed in as Mr Patel" in page(proxy, "127.0.0.9")), proxy.output()[-3000:]

    # The listening worker dies outright; the other takes the port over and hears the next sign-in.
    assert first.process is not None
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    second.wait_for_output(r"RADIUS accounting listening", timeout=20)
    accounting_start(radius_port, "ben", "127.0.0.10", "b1")
    assert wait(lambda: "Signed in as Ben Smith" in page(second, "127.0.0.10")), second.output()[-3000:]
