"""`gateway proxy`, the gateway's own mitmproxy Master, does what `mitmdump -s addons/gateway.py` does: a real
process, real HTTP and HTTPS origins, real clients from different loopback addresses acting as devices."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.store.migrate import upgrade
from tests.support.clients import curl, fetch, httpx_client
from tests.support.mitmdump import GATEWAY_PROXY, Mitmdump, MitmdumpError
from tests.support.origins import OriginServer
from tests.support.policies import demo_policy_with_devices

pytestmark = pytest.mark.e2e

PUPIL, STAFF = "127.0.0.2", "127.0.0.4"
MONDAY_LESSON = "2026-09-07T09:30"
PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}
FAULTY = Path(__file__).parent / "support" / "faulty_part.py"


def start_master(folder: Path, origin: OriginServer | None = None, scripts: tuple[Path, ...] = (),
                 **options: Any) -> Mitmdump:  # fmt: skip
    db = f"sqlite:///{folder / 'gateway.db'}"
    upgrade(db)
    policy = demo_policy_with_devices(folder, {PUPIL: "pupil", STAFF: "staff"})
    return Mitmdump(
        [str(s) for s in scripts],
        {"gateway_policy": policy, "gateway_now": MONDAY_LESSON, "gateway_db": db, "gateway_spool": folder / "spool",
         **options},  # fmt: skip
        workdir=folder, origin=origin, ready_line=r"policy .* loaded", program=GATEWAY_PROXY,
    ).start()  # fmt: skip


def logged(folder: Path, host: str) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(folder / "gateway.db") as db:
        return db.execute("SELECT method, action, group_name, source FROM access_log WHERE host = ? ORDER BY id",
                          (host,)).fetchall()  # fmt: skip


@pytest.fixture(scope="module")
def master(tmp_path_factory, origin):
    proxy = start_master(tmp_path_factory.mktemp("master"), origin)
    yield proxy
    proxy.stop()


def client(proxy: Mitmdump, source: str) -> httpx.Client:
    return httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=source)


def test_the_master_blocks_a_pupil_and_never_contacts_the_site(master, origin):
    origin.clear()
    with client(master, PUPIL) as http:
        over_https = http.get("https://www.facebook.com/some/page", headers=PAGE)
        over_http = http.get("http://www.facebook.com/", headers=PAGE)
    for got in (over_https, over_http):
        assert got.status_code == 403 and "This page is blocked" in got.text and "Group: pupil" in got.text
    assert not origin.seen(host="www.facebook.com")
    master.wait_for_output(r"blocked www\.facebook\.com for 127\.0\.0\.2 \(pupil\): rule=social-media-named")


def test_the_master_lets_allowed_sites_through_over_http_and_https(master, origin):
    with client(master, PUPIL) as http:
        assert "origin ok: www.bbc.co.uk/bitesize" in http.get("https://www.bbc.co.uk/bitesize").text
        assert "origin ok: www.bbc.co.uk/news" in http.get("http://www.bbc.co.uk/news").text


def test_the_master_tells_devices_apart_by_address(master):
    with client(master, STAFF) as http:
        blocked = http.get("https://www.tiktok.com/", headers=PAGE)
    assert blocked.status_code == 403 and "Group: staff" in blocked.text and "headteacher" in blocked.text


def test_devices_still_fetch_the_gateway_ca_from_mitm_it(master):
    got = curl("http://mitm.it/cert/pem", proxy=master.proxy_url, source_address=PUPIL)
    assert got.status == 200
    assert got.text.strip() == master.ca_cert_path.read_text().strip()


def test_mitmproxy_options_for_rewriting_or_recording_traffic_do_not_exist_in_the_master(tmp_path):
    # The Master never loads the addons that would change traffic after the decision: setting one is an error.
    with pytest.raises(MitmdumpError, match=r"unknown option\(s\): map_remote"):
        start_master(tmp_path, map_remote="|.*|http://elsewhere.example")


def test_a_database_nobody_migrated_stops_the_master_with_what_to_run(tmp_path):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(MitmdumpError, match=r"gateway db upgrade --db"):
        start_master(tmp_path, gateway_db=fresh)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_part_that_raises_fails_closed_and_a_stop_writes_every_row_queued(tmp_path, origin, signum):
    origin.clear()
    proxy = start_master(tmp_path, origin, scripts=(FAULTY,))
    try:
        for host in ("explode.example.org", "identity-explode.example.org"):
            broken = curl(f"http://{host}/page", proxy=proxy.proxy_url, source_address=PUPIL, headers=PAGE)
            assert broken.status == 403 and "could not check this page" in broken.text
            assert not origin.seen(host=host)
        assert curl("http://www.facebook.com/", proxy=proxy.proxy_url, source_address=PUPIL).status == 403
        hosts = [f"www.bbc.co.uk/page{i}" for i in range(20)]
        for url in hosts:
            assert fetch(f"http://{url}", proxy=proxy.proxy_url, source_address=PUPIL).status == 200
    finally:
        assert proxy.process is not None
        proxy.process.send_signal(signum)
        returncode = proxy.process.wait(30)
    assert returncode == 0, proxy.output()[-3000:]
    for host in ("explode.example.org", "identity-explode.example.org"):
        assert logged(tmp_path, host) == [("GET", "block", "pupil", "failure")]
    # Every row queued when the signal came is in the database once the process has ended.
    assert len(logged(tmp_path, "www.bbc.co.uk")) == len(hosts)

