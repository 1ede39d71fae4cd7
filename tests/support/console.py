"""Driving the console's Flask app as a signed-in member of staff would, through its test client."""

from __future__ import annotations

import re
from typing import Any

PASSWORD = "correct horse battery"


def csrf(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def signed_in(app: Any, username: str, password: str = PASSWORD) -> Any:
    """A test client signed in as `username`; fails if the sign-in does not succeed."""
    client = app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    response = client.post("/sign-in", data={"username": username, "password": password, "csrf_token": csrf(page)})
    assert response.status_code == 302, f"{username} could not sign in"
    return client


def post(client: Any, path: str, **form: object) -> Any:
    """POST `form` to `path` with a CSRF token from a page every signed-in account may open."""
    token = csrf(client.get("/help").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token} | form)
