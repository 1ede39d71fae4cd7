"""Every console page and API call that takes parameters answers a value out of range with 400 and what was
wrong, never a 500; good values still work."""

from __future__ import annotations

import base64
import re

import pytest

from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import PASSWORD, seed

BASIC = {"Authorization": "Basic " + base64.b64encode(f"headteacher:{PASSWORD}".encode()).decode()}

PAGES = ["page=99999999999999999999999", "page=-1", "page=0", "page=abc", "page=%EF%BC%91", "page=1e9"]
TIMES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00%2B14:00", "10000-01-01", "yesterday", "2026-13-01",
         "2026-03-02T25:00"]  # fmt: skip
DAYS = ["9999-12-31", "0001-01-01", "2026-02-30", "next%20week"]

CASES = (
    [("/logs", q) for q in PAGES]
    + [("/logs", f"{name}={t}") for name in ("since", "until") for t in TIMES]
    + [("/logs", "sort=random()"), ("/logs", "action=delete")]
    + [("/logs/person/amy", f"day={d}") for d in DAYS]
    + [("/audit", q) for q in PAGES]
    + [("/api/v1/log", q) for q in PAGES[:2]]
    + [("/api/v1/log", f"until={t}") for t in TIMES[:3]]
    + [("/api/v1/people/amy/timeline", f"day={d}") for d in DAYS[:2]]
    + [("/api/v1/audit", q) for q in PAGES[:3]]
    + [("/api/v1/people/amy/export", "format=xml")]
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("params")
    app = create_app(ConsoleConfig(db_url=seed(tmp), secret_key_file=str(tmp / "secret")))
    client = app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    signed_in = client.post("/sign-in", data={"username": "headteacher", "password": PASSWORD, "csrf_token": csrf})
    assert signed_in.status_code == 302
    client.csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/logs").get_data(as_text=True))[1]
    return client


@pytest.mark.parametrize(("path", "query"), CASES)
def test_a_value_out_of_range_is_a_400_with_a_message(client, path: str, query: str) -> None:
    api = path.startswith("/api/")
    response = client.get(f"{path}?{query}", headers=BASIC if api else {})
    assert response.status_code == 400
    name = query.split("=")[0]
    if api:
        assert name in response.get_json()["error"]
    else:
        assert "Not understood" in response.get_data(as_text=True) and name in response.get_data(as_text=True)


@pytest.mark.parametrize("query", [f"until={TIMES[0]}", "since=yesterday", "page=-3"])
def test_the_csv_export_refuses_a_bad_filter(client, query: str) -> None:
    name, value = query.split("=")
    response = client.post("/logs/export.csv", data={name: value.replace("%2B", "+"), "csrf_token": client.csrf})
    assert response.status_code == 400 and name in response.get_data(as_text=True)


@pytest.mark.parametrize(("path", "query"), [
    ("/logs", "page=2&since=2026-03-02T09:00&until=2026-03-02T10:00%2B01:00&sort=oldest&action=block"),
    ("/logs/person/amy", "day=2026-03-02"),
    ("/audit", "page=3"),
    ("/api/v1/log", "page=100000&until=9998-12-30T00:00"),
    ("/api/v1/people/amy/timeline", "day=2026-03-02"),
    ("/api/v1/audit", "page=1"),
    ("/dashboard", "days=99999999999999999999999"),
    ("/api/v1/dashboard", "days=-1"),
])  # fmt: skip
def test_values_in_range_are_answered(client, path: str, query: str) -> None:
    response = client.get(f"{path}?{query}", headers=BASIC if path.startswith("/api/") else {})
    assert response.status_code == 200
