"""Sign-in limits and session lifetimes through the real app, and the audit page's filters."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest

from gateway.store.audit import record
from gateway.store.engine import make_engine
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import PASSWORD, seed
from tests.console.test_console_app import audit_rows

COOKIE = "gateway_console"


def make_app(tmp_path, **config):  # type: ignore[no-untyped-def]
    url = seed(tmp_path)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), **config))
    app.config["DB_URL"] = url
    return app


def sign_in(client, username: str, password: str = PASSWORD, address: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    environ = {"REMOTE_ADDR": address}
    page = client.get("/sign-in", environ_base=environ).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    return client.post("/sign-in", data={"username": username, "password": password, "csrf_token": csrf},
                       environ_base=environ)  # fmt: skip


def sent_to_sign_in(response) -> bool:  # type: ignore[no-untyped-def]
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_ten_failures_from_one_address_in_five_minutes_stop_further_attempts(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    # Different usernames each time: the per-account lock-out (five failures) never comes into it.
    for n in range(10):
        assert sign_in(client, f"guess{n}", "wrong password!", address="10.9.9.9").status_code == 401
    refused = sign_in(client, "officer", address="10.9.9.9")
    assert refused.status_code == 429 and "Too many sign-in attempts" in refused.get_data(as_text=True)
    assert client.get("/dashboard", environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 302, "not signed in"
    # Another computer is not held up, and the officer's account is not locked by someone else's guessing.
    other = app.test_client()
    assert sign_in(other, "officer", address="10.9.9.10").status_code == 302
    assert other.get("/dashboard", environ_base={"REMOTE_ADDR": "10.9.9.10"}).status_code == 200
    actions = [e.action for e in audit_rows(app)]
    assert actions.count("sign_in_failed") == 10 and actions.count("sign_in_refused") == 1


def test_a_session_ends_after_the_idle_limit_even_if_the_cookie_is_kept(tmp_path):
    app = make_app(tmp_path, session_idle=timedelta(seconds=2))
    client = app.test_client()
    assert sign_in(client, "officer").status_code == 302
    for _ in range(3):  # activity keeps it alive past the idle limit
        time.sleep(1)
        assert client.get("/logs").status_code == 200
    cookie = client.get_cookie(COOKIE).value
    time.sleep(3.1)
    kept = app.test_client()
    kept.set_cookie(COOKIE, cookie)  # a browser that ignores the cookie's expiry gains nothing
    assert sent_to_sign_in(kept.get("/logs"))
    assert sent_to_sign_in(client.get("/logs"))


def test_a_busy_session_still_ends_at_the_absolute_limit(tmp_path):
    app = make_app(tmp_path, session_idle=timedelta(minutes=5), session_max=timedelta(seconds=3))
    client = app.test_client()
    assert sign_in(client, "officer").status_code == 302
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        assert client.get("/logs").status_code == 200
        time.sleep(0.5)
    time.sleep(1)
    assert sent_to_sign_in(client.get("/logs"))
    assert sent_to_sign_in(client.get("/logs")), "signed out, not just refused once"
    ended = [e for e in audit_rows(app) if e.action == "sign_out"]
    assert len(ended) == 1 and "session time limit" in ended[0].detail and ended[0].actor == "officer"
    assert sign_in(client, "officer").status_code == 302 and client.get("/logs").status_code == 200


@pytest.mark.parametrize(("query", "shown", "hidden"), [
    ("action=policy-loaded", ["gateway:Main site"], ["cli:root"]),
    ("actor=cli:root", ["person:amy"], ["gateway:Main site"]),
    ("target=person:", ["person:amy"], ["gateway:Main site"]),
])  # fmt: skip
def test_the_audit_page_shows_changes_and_filters_them(tmp_path, query, shown, hidden):
    app = make_app(tmp_path)
    engine = make_engine(app.config["DB_URL"])
    record(engine, "gateway:Main site", "policy-loaded", target="policy", detail={"diff": "+    action: allow"})
    record(engine, "cli:root", "change", target="person:amy", detail={"command": "roster set-password"})
    engine.dispose()
    client = app.test_client()
    sign_in(client, "headteacher")
    everything = client.get("/audit").get_data(as_text=True)
    assert "gateway:Main site" in everything and "person:amy" in everything
    assert '<option value="policy-loaded">' in everything
    page = client.get(f"/audit?{query}").get_data(as_text=True)
    table = page.split("<tbody>")[1]
    assert all(s in table for s in shown) and not any(h in table for h in hidden)
