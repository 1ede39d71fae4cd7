"""A real mitmdump running addons/gateway.py writes one access-log row per decision, flushed on a clean stop."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.access_log import AccessLogEntry
from tests.store.databases import pg_schema_url  # noqa: F401 - a fixture
from tests.support.clients import fetch
from tests.support.mitmdump import Mitmdump, MitmdumpError
from tests.support.origins import OriginServer
from tests.support.policies import DEMO_POLICY, demo_policy_with_devices

pytestmark = pytest.mark.e2e

PUPIL = "127.0.0.2"
MONDAY_LESSON = "2026-09-07T09:30"


def policy_with_test_pupil(folder: Path) -> Path:
    return demo_policy_with_devices(folder, {PUPIL: "pupil"})


def test_each_decision_is_logged_with_search_terms_and_without_query(tmp_path):
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(db)
    with OriginServer(tls=True) as origin:
        proxy = Mitmdump(
            ["addons/gateway.py"],
            {"gateway_policy": policy_with_test_pupil(tmp_path), "gateway_now": MONDAY_LESSON, "gateway_db": db,
             "gateway_spool": tmp_path / "spool", "gateway_site": "Main site"},  # fmt: skip
            workdir=tmp_path,
            origin=origin,
            ready_line=r"policy .* loaded",
        ).start()
        try:
            urls = ["https://www.facebook.com/", "https://www.bbc.co.uk/news?id=42",
                    "https://www.google.co.uk/search?q=minecraft+cheats&hl=en"]  # fmt: skip
            statuses = [fetch(url, proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=PUPIL).status
                        for url in urls]  # fmt: skip
        finally:
            proxy.stop()
    assert statuses[0] == 403
    engine = make_engine(db)
    with engine.connect() as c:
        # Requests only: the blocked CONNECT to Facebook has a row of its own.
        rows = {r.host: r for r in c.execute(sa.select(AccessLogEntry).where(AccessLogEntry.method != "CONNECT"))}
    engine.dispose()
    assert set(rows) == {"www.facebook.com", "www.bbc.co.uk", "www.google.co.uk"}
    facebook = rows["www.facebook.com"]
    assert (facebook.action, facebook.group_name, facebook.client_ip, facebook.status) == ("block", "pupil", PUPIL,
                                                                                           403)  # fmt: skip
    assert facebook.period == "lesson" and facebook.site == "Main site" and facebook.rule
    assert rows["www.bbc.co.uk"].path == "/news" and rows["www.bbc.co.uk"].query is None
    assert rows["www.google.co.uk"].search_terms == "minecraft cheats"


def test_the_proxy_refuses_an_unmigrated_database_and_says_what_to_run(tmp_path):
    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    proxy = Mitmdump(
        ["addons/gateway.py"],
        {"gateway_policy": DEMO_POLICY, "gateway_db": db, "gateway_spool": tmp_path / "spool"},
        workdir=tmp_path,
        ready_line=r"policy .* loaded",
    )
    with pytest.raises(MitmdumpError):
        proxy.start()
    proxy.stop()
    assert f"gateway db upgrade --db {db}" in proxy.output()


def test_hostile_requests_reach_the_postgresql_log(tmp_path, pg_schema_url):
    """A NUL in a search term and a 20-letter method once made PostgreSQL refuse the row, hiding the search from
    the officer: through the proxy both arrive, readable (in a schema of its own, so only this test's rows)."""
    postgres_url = pg_schema_url[1]
    upgrade(postgres_url)
    with OriginServer(tls=True) as origin:
        proxy = Mitmdump(
            ["addons/gateway.py"],
            {"gateway_policy": policy_with_test_pupil(tmp_path), "gateway_now": MONDAY_LESSON,
             "gateway_db": postgres_url, "gateway_spool": tmp_path / "spool"},  # fmt: skip
            workdir=tmp_path, origin=origin, ready_line=r"policy .* loaded",
        ).start()
        try:
            fetch("http://www.google.co.uk/search?q=hidden%00porn", proxy=proxy.proxy_url, source_address=PUPIL)
            fetch("http://www.bbc.co.uk/odd", proxy=proxy.proxy_url, source_address=PUPIL, method="ABCDEFGHIJKLMNOPQRST")
        finally:
            proxy.stop()
    engine = make_engine(postgres_url)
    with engine.connect() as c:
        rows = list(c.execute(sa.select(AccessLogEntry).where(AccessLogEntry.client_ip == PUPIL)))
    engine.dispose()
    searches = [r.search_terms for r in rows if r.host == "www.google.co.uk"]
    assert searches and "porn" in searches[0] and "\x00" not in searches[0]
    odd = [r for r in rows if r.path == "/odd"]
    assert odd and odd[0].method.startswith("ABCDEFGHIJ") and not list((tmp_path / "spool").rglob("rejected/*"))
