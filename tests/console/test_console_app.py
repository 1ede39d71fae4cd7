"""The console through Flask's test client: roles, CSRF, headers, audit, API."""

from __future__ import annotations

import base64
import re
import time

import pytest
from sqlalchemy import select

from gateway.store.engine import NotMigrated, make_engine
from gateway.store.models.audit import AuditEvent
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import HOSTILE_PATH, PASSWORD, seed


@pytest.fixture
def app(tmp_path):
    url = seed(tmp_path)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret")))
    app.config["DB_URL"] = url
    return app


def token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', html).group(
        1
    ) or ""


def sign_in(client, username: str, password: str = PASSWORD, address: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    environ = {"REMOTE_ADDR": address}
    page = client.get("/sign-in", environ_base=environ).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    return client.post("/sign-in", data={"username": username, "password": password, "csrf_token": match.group(1)},
                       environ_base=environ)  # fmt: skip


def audit_rows(app) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    engine = make_engine(app.config["DB_URL"])
    with engine.connect() as c:
        rows = list(c.execute(select(AuditEvent).order_by(AuditEvent.id)))
    engine.dispose()
    return rows


def test_console_refuses_an_unmigrated_database(tmp_path):
    with pytest.raises(NotMigrated, match="gateway db upgrade"):
        create_app(ConsoleConfig(db_url=f"sqlite:///{tmp_path / 'x.db'}", secret_key="k"))


def test_every_page_needs_sign_in(app):
    client = app.test_client()
    for path in ("/", "/dashboard", "/logs", "/logs/person/amy", "/audit", "/help"):
        response = client.get(path)
        assert response.status_code == 302 and "/sign-in" in response.headers["Location"], path
    assert client.get("/api/v1/log").status_code == 401


def test_secure_headers_and_cookie(app):
    client = app.test_client()
    response = sign_in(client, "officer")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/logs")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize(
    ("role", "log", "dashboard", "audit"),
    [
        ("officer", 200, 200, 403),
        ("headteacher", 200, 200, 200),
        ("dpo", 200, 200, 200),
        ("teacher", 403, 403, 403),
        ("it", 403, 200, 403),
    ],
)
def test_roles(app, role, log, dashboard, audit):
    client = app.test_client()
    sign_in(client, role)
    assert client.get("/logs").status_code == log
    assert client.get("/logs/person/amy").status_code == log
    assert client.get("/dashboard").status_code == dashboard
    assert client.get("/audit").status_code == audit
    auth = {"Authorization": "Basic " + base64.b64encode(f"{role}:{PASSWORD}".encode()).decode()}
    api = app.test_client()
    assert api.get("/api/v1/log", headers=auth).status_code == log
    assert api.get("/api/v1/dashboard", headers=auth).status_code == dashboard
    assert api.get("/api/v1/audit", headers=auth).status_code == audit


def test_a_form_without_its_csrf_token_is_refused(app):
    client = app.test_client()
    assert client.post("/sign-in", data={"username": "officer", "password": PASSWORD}).status_code == 400
    sign_in(client, "officer")
    assert client.post("/logs/export.csv", data={"person": "amy"}).status_code == 400
    assert not any(r.action == "export_log" for r in audit_rows(app))


def test_hostile_values_are_escaped(app):
    client = app.test_client()
    sign_in(client, "officer")
    html = client.get("/logs").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html


def test_filters_api_and_audit(app):
    client = app.test_client()
    sign_in(client, "officer")
    html = client.get("/logs?person=amy&action=block").get_data(as_text=True)
    assert "www.tiktok.com" in html and "www.roblox.com" not in html and "www.bbc.co.uk" not in html
    assert "www.bbc.co.uk" in client.get("/logs?domain=bbc.co.uk").get_data(as_text=True)
    assert "www.tiktok.com" not in client.get("/logs?domain=bbc.co.uk").get_data(as_text=True)
    api = client.get("/api/v1/log?person=ben").get_json()
    assert {r["host"] for r in api["rows"]} == {"www.roblox.com", "www.bbc.co.uk"}
    flagged = client.get("/api/v1/log?action=flag").get_json()["rows"]
    assert flagged[0]["search_terms"] == "how to bypass school filter" and flagged[0]["query"] is None
    dashboard = client.get("/api/v1/dashboard").get_json()
    assert {"domain": "www.tiktok.com", "count": 1} in dashboard["top_blocked_domains"]
    events = audit_rows(app)
    assert [e.action for e in events if e.action.startswith("sign_in")] == ["sign_in"]
    views = [e for e in events if e.action == "view_log"]
    assert '"person": "amy"' in views[0].detail and views[0].actor == "officer"


def test_failed_sign_ins_are_audited_and_stop_that_computer_not_the_account(app):
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "officer", "wrong password!").status_code == 401
    refused = sign_in(client, "officer")
    assert refused.status_code == 429 and "from this computer" in refused.get_data(as_text=True)
    # The account is not locked: the officer at another computer signs in (after a short delay at most).
    other = app.test_client()
    started = time.monotonic()
    assert sign_in(other, "officer", address="10.0.0.9").status_code == 302
    assert time.monotonic() - started < 3
    events = audit_rows(app)
    assert [e.action for e in events if e.action.startswith("sign_in")] == ["sign_in_failed"] * 5 + [
        "sign_in_refused", "sign_in"]
    assert "this account" in events[-2].detail and events[-1].client_ip == "10.0.0.9"


def test_person_export_for_subject_access(app):
    client = app.test_client()
    sign_in(client, "dpo")
    page = client.get("/logs/person/amy").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/people/amy/export", data={"format": "json", "csrf_token": csrf})
    document = response.get_json()
    assert document["subject"] == "amy" and len(document["access_log"]) == 4
    assert any(e.action == "export_person" and e.target == "person:amy" for e in audit_rows(app))
    officer = app.test_client()
    sign_in(officer, "officer")
    assert officer.post("/people/amy/export", data={"format": "json", "csrf_token": csrf}).status_code in (400, 403)
