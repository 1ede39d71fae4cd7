"""From a flagged visit to a school-wide block, end to end: a real mitmdump with the demo policy writes the visit
to the store, the report is in the officer's queue in the console, the officer blocks the site in one click, and
within seconds the running proxy blocks it over plain HTTP and HTTPS, for the site and its subdomains, however the
host is spelt; lifting the block lets it through again within seconds."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.accounts import create_user
from gateway.store.engine import make_engine
from gateway.store.local_blocks import add_block
from gateway.store.migrate import upgrade
from gateway.store.models.reports import Report
from gateway.web.app import ConsoleConfig, create_app
from tests.support.clients import curl, httpx_client
from tests.store.databases import PG_HOST, PG_PORT, TcpRelay, pg_schema_url  # noqa: F401
from tests.support.console import PASSWORD, post, signed_in
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.policies import demo_policy_with_devices

pytestmark = pytest.mark.e2e

STAFF = "127.0.0.4"
LIVE_WITHIN = 5.0
PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}
BLOCKED_WORDING = "The e-safety officer blocked this site after a report."
# The demo policy flags staff visits to drugs-information sites such as this one (reported, not blocked).
FLAGGED = "erowid.org"


def fetch(proxy: Mitmdump, url: str) -> tuple[int, str]:
    if url.startswith("https://"):
        with httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=STAFF) as http:
            got = http.get(url, headers=PAGE)
        return got.status_code, got.text
    fetched = curl(url, proxy=proxy.proxy_url, source_address=STAFF, headers=PAGE)
    return fetched.status, fetched.text


# Every spelling a pupil might try: subdomains, upper case, a trailing dot, over HTTP and HTTPS.
SPELLINGS = [f"http://{FLAGGED}/", f"https://{FLAGGED}/", f"https://www.{FLAGGED}/x", f"http://forum.{FLAGGED}/",
             f"http://WWW.EROWID.ORG./", f"https://Www.Erowid.Org./"]  # fmt: skip


def all_become(proxy: Mitmdump, status: int, spellings: list[str] = SPELLINGS) -> float:
    """Seconds until every spelling answers `status`; fails past LIVE_WITHIN."""
    started = time.monotonic()
    for url in spellings:
        while (got := fetch(proxy, url))[0] != status:
            assert time.monotonic() - started < LIVE_WITHIN, f"{url}: still {got[0]} after {LIVE_WITHIN}s"
            time.sleep(0.1)
        if status == 403:
            assert BLOCKED_WORDING in got[1], url
    return time.monotonic() - started


def waiting_for(check: Callable[[], object], what: str, within: float = 10.0) -> object:
    started = time.monotonic()
    while not (found := check()):
        assert time.monotonic() - started < within, f"no {what} after {within}s"
        time.sleep(0.1)
    return found


def test_officer_blocks_a_flagged_site_and_every_spelling_is_blocked_within_seconds(tmp_path: Path, origin) -> None:
    policy = demo_policy_with_devices(tmp_path, {STAFF: "staff"})
    # The store is polled at the default interval, as in a school.
    proxy = start_gateway(tmp_path, policy, at="", origin=origin)
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    engine = make_engine(db)
    with Session(engine) as s, s.begin():
        create_user(s, "officer", "Olive Officer", "officer", PASSWORD)
    console = create_app(ConsoleConfig(db_url=db, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    try:
        # Flagged: the member of staff gets through, and the officer gets a report.
        assert fetch(proxy, f"https://www.{FLAGGED}/trip-reports")[0] == 200

        def report() -> Report | None:
            with Session(engine) as s:
                return s.scalars(select(Report).where(Report.host == f"www.{FLAGGED}")).first()

        made = waiting_for(report, "report of the flagged visit")
        assert isinstance(made, Report) and (made.kind, made.category) == ("flagged_site", "drugs")
        officer = signed_in(console, "officer")
        queue = officer.get("/reports/").get_data(as_text=True)
        assert f"https://www.{FLAGGED}/trip-reports" in queue
        detail = officer.get(f"/reports/{made.id}").get_data(as_text=True)
        assert re.search(r"Block the site erowid\.org", detail)
        assert post(officer, f"/reports/{made.id}/block", scope="site", reason="").status_code == 302
        blocked_in = all_become(proxy, 403)
        # Nothing else moved: another site stays reachable.
        assert fetch(proxy, "https://www.bbc.co.uk/bitesize")[0] == 200
        page = officer.get("/reports/blocks").get_data(as_text=True)
        block_id = int(page.split('action="/reports/blocks/')[1].split("/")[0])
        lifted = post(officer, f"/reports/blocks/{block_id}/remove", reason="checked: harm reduction charity")
        assert lifted.status_code == 302
        lifted_in = all_become(proxy, 200)
        print(f"\nlocal block live in {blocked_in:.2f}s, lifted in {lifted_in:.2f}s")
    finally:
        proxy.stop()
        engine.dispose()


def test_blocks_stay_across_a_policy_reload_and_while_the_store_is_away(tmp_path: Path, origin,
                                                                        pg_schema_url) -> None:  # fmt: skip
    """The policy file changes: the new policy gets the blocks too. The network to PostgreSQL is cut: the proxy
    keeps the local blocks it read last."""
    _, url = pg_schema_url
    upgrade(url)
    relay = TcpRelay((PG_HOST, PG_PORT))
    relay.up()
    policy = demo_policy_with_devices(tmp_path, {STAFF: "staff"})
    proxy = start_gateway(tmp_path, policy, at="", origin=origin, gateway_grants_interval_ms=250,
                          gateway_reload_interval_ms=200,
                          gateway_db=url.replace(f":{PG_PORT}/", f":{relay.port}/"))  # fmt: skip
    engine = make_engine(url)
    try:
        with Session(engine) as s, s.begin():
            add_block(s, host="forum.example", path_prefix=None, reason="test", by="officer", now=datetime.now(UTC))
        started = time.monotonic()
        while fetch(proxy, "http://forum.example/")[0] != 403:
            assert time.monotonic() - started < LIVE_WITHIN
            time.sleep(0.1)
        mark = proxy.mark()
        policy.write_text(policy.read_text() + "\n# edited\n")
        proxy.wait_for_output(r"policy .* loaded", after=mark)
        # At once: the follower lays the blocks over the new policy before the first decision made with it.
        assert fetch(proxy, "http://forum.example/")[0] == 403
        assert fetch(proxy, "https://forum.example/")[0] == 403
        relay.down()
        # Polls every 250 ms fail (or hang until the stall guard cuts them): the blocks read last stand throughout.
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            assert fetch(proxy, "http://forum.example/")[0] == 403
            assert fetch(proxy, "https://www.forum.example/")[0] == 403
    finally:
        proxy.stop()
        relay.down()
        engine.dispose()
