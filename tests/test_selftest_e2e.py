"""`gateway selftest` against a real mitmdump running the demo policy: every group and category as the standards
ask, a policy without its adult rule failing for pupils, the empty illegal-content slot reported, a forged token
ignored, and no self-test request ever reaching anything but the self-test's own server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from gateway.selftest.token import HEADER, RESULT_HEADER, mint
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer
from tests.support.policies import ROOT, demo_policy_with_devices

pytestmark = pytest.mark.e2e

ADULT_RULE = "adult, gambling, drugs, self_harm"


def selftest(proxy: Mitmdump, secret: Path, policy: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "selftest", "--proxy", proxy.proxy_url, "--secret-file", str(secret),
         "--policy", str(policy), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "console-secret"
    path.write_text("a-console-secret-for-the-tests\n")
    return path


def test_the_demo_policy_passes_for_every_group_and_rows_are_marked_selftest(tmp_path, secret):
    policy = demo_policy_with_devices(tmp_path, {})
    proxy = start_gateway(tmp_path, policy, gateway_selftest_secret_file=secret)
    try:
        run = selftest(proxy, secret, policy, "--json")
    finally:
        proxy.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["passed"] and report["illegal_slot"] == {"filled": False, "lists": ["iwf", "ctiru"]}
    assert report["periods"] == ["lesson"]  # the gateway's clock: a Monday lesson
    status = {(r["group"], r["category"]): r["status"] for r in report["results"]}
    assert status[("pupil", "pornography")] == status[("guest", "self_harm")] == "pass"
    assert status[("staff", "illegal")] == "pass" and status[("staff", "piracy")] == "not covered"
    # A page of self-harm phrases on an address no list names is blocked by its words alone.
    assert status[("pupil", "content")] == "pass"
    actions = {(r["group"], p["url"]): p["action"] for r in report["results"] for p in r["probes"]}
    assert actions[("pupil", "http://erowid.org/")] == "block"
    assert actions[("staff", "http://erowid.org/")] == "flag"  # reported to the officer, as the policy says
    assert actions[("pupil", "https://www.samaritans.org/")] == "allow"
    assert actions[("pupil", "http://content-check.selftest.test/self_harm")] == "block"
    # Every row the run left is the self-test's, which no report or alert is ever made from.
    engine = create_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    with engine.connect() as db:
        sources = db.execute(text("select identity_source, count(*) from access_log group by 1")).all()
        reports = db.execute(text("select count(*) from report")).scalar_one()
    engine.dispose()
    assert [source for source, _ in sources] == ["selftest"] and sources[0][1] > 100
    # Flags for staff and illegal-slot hits, yet no report for the officer and no alert.
    assert reports == 0


def test_without_the_adult_rule_pupils_fail_and_the_exit_status_says_so(tmp_path, secret):
    policy = demo_policy_with_devices(tmp_path, {}, replace={ADULT_RULE: "gambling, drugs, self_harm"})
    policy.write_text(policy.read_text().split("\nexpect:\n")[0].replace("\n# Decisions this policy", "\n# (none)"))
    proxy = start_gateway(tmp_path, policy, gateway_selftest_secret_file=secret)
    try:
        run = selftest(proxy, secret, policy, "--group", "pupil", "--year-group", "5")
    finally:
        proxy.stop()
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Group pupil, year 5 (expected: block every known-bad category)" in run.stdout
    assert "FAIL         Pornography: known-bad 0/3 blocked, known-good 2/2 open" in run.stdout
    assert "known-bad http://pornhub.com/: allow (default)" in run.stdout
    assert "PASS         Gambling" in run.stdout
    assert "Illegal-content slot: EMPTY" in run.stdout


def test_a_forged_or_foreign_token_is_ignored_and_never_reaches_its_origin(tmp_path, secret):
    """`internet` stands for the real sites (every upstream connection the proxy opens goes there); `token_origin`
    is the self-test server a token names."""
    policy = demo_policy_with_devices(tmp_path, {})
    with OriginServer() as internet, OriginServer() as token_origin:
        proxy = start_gateway(tmp_path, policy, origin=internet, gateway_selftest_secret_file=secret)
        try:
            with httpx.Client(proxy=proxy.proxy_url, trust_env=False) as http:
                forged = mint("another-secret", "staff", None, ("127.0.0.1", token_origin.port))
                # Drugs sites are flagged for staff, blocked for pupils: decided as the pupil the client is.
                got = http.get("http://erowid.org/", headers={HEADER: forged})
                assert got.status_code == 403 and RESULT_HEADER not in got.headers
                got = http.get("http://www.samaritans.org/help", headers={HEADER: forged})
                assert got.status_code == 200 and RESULT_HEADER not in got.headers
                # A valid token naming an origin that is not a local address is not honoured either.
                far = mint(secret.read_text().strip(), "staff", None, ("93.184.216.34", 80))
                got = http.get("http://www.samaritans.org/far", headers={HEADER: far})
                assert got.status_code == 200 and RESULT_HEADER not in got.headers
                assert token_origin.requests == []
                # Ignored tokens are taken off the request all the same: the site never sees one.
                assert [(r.host, r.path) for r in internet.requests] == [("www.samaritans.org", "/help"),
                                                                         ("www.samaritans.org", "/far")]
                assert all("x-gateway-selftest" not in r.headers for r in internet.requests)

                # A valid token: decided as staff, answered by the token's origin only, without the header.
                valid = mint(secret.read_text().strip(), "staff", None, ("127.0.0.1", token_origin.port))
                got = http.get("http://erowid.org/page", headers={HEADER: valid})
                assert got.status_code == 200 and json.loads(got.headers[RESULT_HEADER])["action"] == "flag"
                (seen,) = token_origin.requests
                assert (seen.host, seen.path) == ("erowid.org", "/page") and "x-gateway-selftest" not in seen.headers
                assert len(internet.requests) == 2
            ignored = r"ignored a self-test token from 127\.0\.0\.1: "
            proxy.wait_for_output(ignored + r"not signed with this gateway's secret")
            proxy.wait_for_output(ignored + r"origin 93\.184\.216\.34 is not a local address")
        finally:
            proxy.stop()
