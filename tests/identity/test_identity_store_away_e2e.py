"""A real mitmdump whose PostgreSQL store does not answer when it starts (a stand-in that takes connections and
says nothing): it filters by network meanwhile, and once the store answers, portal sign-ins and the device
register take effect without a restart. The DHCP lease file it follows has a line no clock can hold throughout."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from gateway.identity.directory import import_devices, import_people
from gateway.identity.people import Device, Person
from gateway.identity.sessions import start_session
from gateway.identity.types import IdentitySource
from gateway.store.engine import make_engine, session_factory
from gateway.store.migrate import upgrade
from tests.identity.test_proxy_identity_e2e import PORTAL, POLICY, wait, write_leases
from tests.store.databases import PG_HOST, PG_PORT, pg_schema_url  # noqa: F401
from tests.support.clients import fetch
from tests.support.pg_standin import PgStandIn

pytestmark = pytest.mark.e2e

BAD_LEASE = "99999999999999999999 aa:bb:cc:00:00:55 127.0.0.55 broken *"


def test_identity_comes_back_when_the_store_does(tmp_path: Path, mitmdump_proxy, origin_http,
                                                 pg_schema_url) -> None:  # noqa: F811
    _, url = pg_schema_url
    upgrade(url)
    engine = make_engine(url)
    store: sessionmaker = session_factory(engine)
    with store.begin() as s:
        import_people(s, [Person("ben", "Ben Smith", "pupil", year_group=4)])
        import_devices(s, [Device("iPad-1A-07", "aa:bb:cc:00:00:07", "ipad", school_class="1A")])
        start_session(s, client_ip="127.0.0.20", source=IdentitySource.PORTAL, username="ben",
                      now=datetime.now(UTC))
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("idle_timeout_minutes: 1", "idle_timeout_minutes: 30"))
    (tmp_path / "lists").mkdir()
    leases = tmp_path / "dnsmasq.leases"
    expiry = int(time.time()) + 3600
    write_leases(leases, [BAD_LEASE, f"{expiry} aa:bb:cc:00:00:07 127.0.0.7 ipad *"])

    with PgStandIn((PG_HOST, PG_PORT)) as standin:
        standin.black_hole()
        proxy = mitmdump_proxy(
            ["addons/gateway.py"],
            {"gateway_policy": str(policy), "gateway_db": standin.url_for(url), "gateway_spool": tmp_path / "spool",
             "gateway_leases": str(leases), "gateway_portal_url": PORTAL, "gateway_identity_interval_ms": 200},
            origin=origin_http, ready_line=r"identity sources off until the database answers",
        )  # fmt: skip

        def get(page: str, device: str):  # type: ignore[no-untyped-def]
            return fetch(page, proxy=proxy.proxy_url, source_address=device, headers={"Accept": "text/html"})

        # The store is away: the proxy still answers, every client at its network's default (sign in first).
        assert get("http://learn.example/", "127.0.0.20").status == 302
        assert get("http://learn.example/", "127.0.0.7").status == 302

        standin.forward()
        proxy.wait_for_output(r"identity sources running: 1 people, 1 devices, 1 live sessions", timeout=40)
        assert wait(lambda: "Signed in as Ben Smith" in get("http://games.example/", "127.0.0.20").text)
        assert get("http://learn.example/", "127.0.0.7").status == 200, "the class iPad, known by its lease"

        # The lease moves to another address in a file that still holds the bad line: the move is seen.
        write_leases(leases, [BAD_LEASE, f"{expiry} aa:bb:cc:00:00:07 127.0.0.8 ipad *"])
        assert wait(lambda: get("http://learn.example/", "127.0.0.8").status == 200)
        assert get("http://learn.example/", "127.0.0.7").status == 302
        output = proxy.output()
    assert output.count("identity sources off until the database answers") == 1, "said once, not every retry"
    assert "OverflowError" not in output and "Traceback" not in output
    assert output.count("skipped 1 line(s) not understood (line 1)") == 1
