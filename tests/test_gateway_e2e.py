"""The enforcing gateway end to end: a real mitmdump with addons/gateway.py, real HTTP and HTTPS origins on
loopback, and real clients (httpx and curl) from different loopback addresses acting as different devices."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from gateway.store.migrate import upgrade
from tests.support.clients import curl, httpx_client, peer_certificate
from tests.support.gateway import start_gateway as start_demo_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer
from tests.support.policies import demo_policy_with_devices

pytestmark = pytest.mark.e2e

PUPIL, GUEST, STAFF = "127.0.0.2", "127.0.0.3", "127.0.0.4"
MONDAY_LESSON = "2026-09-07T09:30"
MONDAY_BREAK = "2026-09-07T10:35"


def demo_policy_with_test_devices(folder: Path) -> Path:
    """The shipped demo policy, with one loopback address per group so each client is a different device."""
    return demo_policy_with_devices(folder, {PUPIL: "pupil", GUEST: "guest", STAFF: "staff"})


@pytest.fixture(scope="module")
def plain_origin():
    with OriginServer() as server:
        yield server


def start_gateway(folder: Path, origin: OriginServer, at: str, **options) -> Mitmdump:
    return start_demo_gateway(folder, demo_policy_with_test_devices(folder), at=at, origin=origin, **options)


@pytest.fixture(scope="module")
def lesson_gateway(tmp_path_factory, origin):
    proxy = start_gateway(tmp_path_factory.mktemp("lesson"), origin, MONDAY_LESSON)
    yield proxy
    proxy.stop()


def client(proxy: Mitmdump, source: str) -> httpx.Client:
    return httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=source)


PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}


def test_pupil_in_lesson_gets_block_page_for_facebook_over_https(lesson_gateway):
    with client(lesson_gateway, PUPIL) as http:
        got = http.get("https://www.facebook.com/some/page?x=1", headers=PAGE)
    assert got.status_code == 403
    assert got.headers["content-type"].startswith("text/html")
    page = got.text
    assert "This page is blocked" in page
    assert "not accessible on the school&#x27;s network" in page
    assert "Twitter/X, Facebook and Instagram, named in the Social Media Policy (list social_media_named)" in page
    assert "social-media-named" in page
    assert "Monday 07 September 2026, 09:30" in page and "lesson time" in page
    assert "Group: pupil" in page
    assert "e-safety officer" in page
    lesson_gateway.wait_for_output(r"blocked www\.facebook\.com for 127\.0\.0\.2 \(pupil\): rule=social-media-named")


def test_allowed_site_reaches_the_origin(lesson_gateway):
    with client(lesson_gateway, PUPIL) as http:
        got = http.get("https://www.bbc.co.uk/bitesize")
    assert got.status_code == 200
    assert "origin ok: www.bbc.co.uk/bitesize" in got.text


def test_non_page_requests_get_a_short_text_403(lesson_gateway):
    with client(lesson_gateway, PUPIL) as http:
        got = http.get("https://pbs.twimg.com/media/cat.jpg", headers={"Accept": "image/*", "Sec-Fetch-Dest": "image"})
    assert got.status_code == 403
    assert got.headers["content-type"].startswith("text/plain")
    assert got.text.startswith("Blocked by the school web gateway:")
    assert "<" not in got.text


def test_groups_differ_by_device(lesson_gateway):
    tiktok = "https://www.tiktok.com/"
    with client(lesson_gateway, GUEST) as http:
        assert http.get(tiktok, headers=PAGE).status_code == 403  # guests: not in lesson time
    with client(lesson_gateway, STAFF) as http:
        blocked = http.get(tiktok, headers=PAGE)
    assert blocked.status_code == 403 and "Group: staff" in blocked.text
    assert "headteacher" in blocked.text


def test_hostile_url_is_escaped_on_the_block_page(lesson_gateway):
    with client(lesson_gateway, PUPIL) as http:
        got = http.get('https://facebook.com/"><script>alert(1)</script>', headers=PAGE)
    assert got.status_code == 403
    assert "<script>alert(1)</script>" not in got.text
    assert "&lt;script&gt;" in got.text or "%3Cscript%3E" in got.text


def test_curl_over_plain_http(tmp_path, plain_origin):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (scripts/bootstrap installs it)")
    proxy = start_gateway(tmp_path, plain_origin, MONDAY_LESSON)
    try:
        blocked = curl("http://instagram.com/", proxy=proxy.proxy_url, source_address=PUPIL,
                       headers={"Accept": "text/html"})
        allowed = curl("http://example.org/hello", proxy=proxy.proxy_url, source_address=PUPIL)
    finally:
        proxy.stop()
    assert blocked.status == 403 and "This page is blocked" in blocked.text
    assert allowed.status == 200 and "origin ok: example.org/hello" in allowed.text


def test_guest_at_break_reaches_other_social_media(tmp_path, origin):
    proxy = start_gateway(tmp_path, origin, MONDAY_BREAK)
    try:
        with client(proxy, GUEST) as http:
            tiktok = http.get("https://www.tiktok.com/", headers=PAGE)
            facebook = http.get("https://www.facebook.com/", headers=PAGE)
        with client(proxy, PUPIL) as http:
            pupil_tiktok = http.get("https://www.tiktok.com/", headers=PAGE)
    finally:
        proxy.stop()
    assert tiktok.status_code == 200 and "origin ok: www.tiktok.com/" in tiktok.text
    assert facebook.status_code == 403 and "break time" in facebook.text
    assert pupil_tiktok.status_code == 403


def test_invalid_policy_reload_keeps_the_running_policy(tmp_path, origin):
    proxy = start_gateway(tmp_path, origin, MONDAY_LESSON)
    policy = tmp_path / "policy.yaml"
    try:
        good = policy.read_text()
        mark = proxy.mark()
        policy.write_text(good.replace("action: block\n    reason: Twitter", "action: obliterate\n    reason: Twitter"))
        failure = proxy.wait_for_output(r"policy reload failed; the running policy stays in force", after=mark)
        log = proxy.output()[failure.start():]
        assert f"{policy}:" in log and re.search(r"rules\.\d+\.action", log)
        with client(proxy, PUPIL) as http:
            assert http.get("https://www.facebook.com/", headers=PAGE).status_code == 403
        # A valid change is swapped in without a restart: pupils may reach other social media for this test.
        mark = proxy.mark()
        time.sleep(0.01)
        policy.write_text(good.replace("lists: [social_media_other]\n    action: block", "lists: [social_media_other]\n    action: allow"))
        proxy.wait_for_output(r"policy .* loaded", after=mark)
        with client(proxy, PUPIL) as http:
            assert http.get("https://www.tiktok.com/", headers=PAGE).status_code == 200
            assert http.get("https://www.facebook.com/", headers=PAGE).status_code == 403
    finally:
        proxy.stop()


def test_never_intercept_hosts_pass_through_untouched(lesson_gateway, origin):
    # A bank's TLS is not intercepted: the client sees the origin's own certificate, not one the gateway made.
    bank = peer_certificate("https://www.barclays.co.uk/", proxy=lesson_gateway.proxy_url, ca=origin.ca_cert_path,
                            source_address=PUPIL)
    intercepted = peer_certificate("https://www.bbc.co.uk/", proxy=lesson_gateway.proxy_url,
                                   ca=lesson_gateway.ca_cert_path, source_address=PUPIL)
    assert "Gateway tests origin CA" in bank[0].issuer.rfc4514_string()
    assert "mitmproxy" in intercepted[0].issuer.rfc4514_string()


def test_blocked_sites_are_never_contacted(tmp_path):
    # No route to any origin: a blocked name that does not even resolve still gets its block page over HTTPS,
    # because the gateway connects upstream only for allowed requests.
    policy = demo_policy_with_test_devices(tmp_path)
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(db)
    proxy = Mitmdump(["addons/gateway.py"], {"gateway_policy": policy, "gateway_now": MONDAY_LESSON, "gateway_db": db,
                                             "gateway_spool": tmp_path / "spool"},
                     workdir=tmp_path, ready_line=r"policy .* loaded").start()
    try:
        with client(proxy, PUPIL) as http:
            got = http.get("https://blocked-and-unresolvable.facebook.com/", headers=PAGE)
    finally:
        proxy.stop()
    assert got.status_code == 403 and "This page is blocked" in got.text
