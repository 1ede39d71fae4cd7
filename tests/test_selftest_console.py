"""The console's filter self-test page: the officer runs it against a real mitmdump and gets the printable report
for governors; the run is audited; a teacher is refused and a signed-out visitor sent to sign in."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from gateway.store.models.audit import AuditEvent
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import seed
from tests.support.console import csrf, signed_in
from tests.support.gateway import start_gateway
from tests.support.policies import demo_policy_with_devices

pytestmark = pytest.mark.e2e


def test_the_officer_runs_the_self_test_and_gets_the_report_for_governors(tmp_path):
    url = seed(tmp_path)
    secret = tmp_path / "console-secret"
    secret.write_text("the-console-secret-shared-with-the-proxy\n")
    policy = demo_policy_with_devices(tmp_path, {})
    proxy = start_gateway(tmp_path, policy, gateway_selftest_secret_file=secret)
    try:
        app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(secret), policy_path=str(policy),
                                       proxy_url=proxy.proxy_url, testing=True))  # fmt: skip
        officer = signed_in(app, "officer")
        page = officer.get("/selftest/").get_data(as_text=True)
        assert 'href="/selftest/"' in page and proxy.proxy_url in page
        report = officer.post("/selftest/", data={"csrf_token": csrf(page)})
    finally:
        proxy.stop()
    html = report.get_data(as_text=True)
    assert report.status_code == 200
    assert "Filter self-test: Perryfields Primary PRU" in html and "by Officer Staff (officer)" in html
    assert "Page content (real-time analysis)" in html
    assert "Every group is filtered in every" in html and "The illegal-content slot is EMPTY" in html
    assert html.count("<strong>PASS</strong>") == 3 * 11 and html.count("<strong>NOT COVERED</strong>") == 3
    assert 'href="/selftest/print.css"' in html
    assert "@media print" in officer.get("/selftest/print.css").get_data(as_text=True)
    engine = create_engine(url)
    with engine.connect() as db:
        actor, detail = db.execute(select(AuditEvent.actor, AuditEvent.detail)
                                   .where(AuditEvent.action == "selftest_run")).one()  # fmt: skip
    engine.dispose()
    assert actor == "officer" and '"passed": true' in detail


def test_teachers_are_refused_and_visitors_sent_to_sign_in(tmp_path):
    url = seed(tmp_path)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), proxy_url="http://x:1",
                                   testing=True))  # fmt: skip
    teacher = signed_in(app, "teacher")
    assert teacher.get("/selftest/").status_code == 403
    assert 'href="/selftest/"' not in teacher.get("/help").get_data(as_text=True)
    token = csrf(teacher.get("/help").get_data(as_text=True))
    assert teacher.post("/selftest/", data={"csrf_token": token}).status_code == 403
    visitor = app.test_client().get("/selftest/")
    assert visitor.status_code == 302 and "/sign-in" in visitor.headers["Location"]
