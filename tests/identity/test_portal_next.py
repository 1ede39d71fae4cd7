"""The portal's next=: a device is sent on after sign-in only to the page the proxy sent it from, never to a
place a third party wrote into a link."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from flask import Flask

from gateway.identity.credentials import hash_secret
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.store.engine import make_engine, session_factory
from gateway.store.migrate import upgrade
from gateway.store.models.people import PersonRecord
from gateway.web.app import ConsoleConfig, create_app
from gateway.identity.portal_link import LIFETIME_SECONDS, sign

DEVICE = "127.0.0.40"
OTHER_DEVICE = "127.0.0.41"


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Flask:  # type: ignore[no-untyped-def]
    tmp: Path = tmp_path_factory.mktemp("portal-next")
    url = f"sqlite:///{tmp / 'gateway.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        import_people(s, [Person("mrp", "Raj Patel", "staff")])
        s.query(PersonRecord).one().password_hash = hash_secret("mrp-password")
    engine.dispose()
    app = create_app(ConsoleConfig(db_url=url, secret_key="test-secret", testing=True,
                                   portal_link_key_file=str(tmp / "portal-link-key")))  # fmt: skip
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def key(app: Flask) -> bytes:
    return app.config["GATEWAY_PORTAL_LINK_KEY"]


def sent_on_to(app: Flask, query: dict[str, str], device: str = DEVICE) -> list[str]:
    """Sign in with next= as given: every place the resulting page would take the device."""
    c = app.test_client()
    page = c.get("/portal/sign-in", query_string=query, headers={"X-Gateway-Client-IP": device}).get_data(as_text=True)
    form = {k: v for k, v in re.findall(r'name="(next(?:_sig)?)" value="([^"]*)"', page)}
    r = c.post("/portal/sign-in", data={"username": "mrp", "password": "mrp-password", **form},
               headers={"X-Gateway-Client-IP": device})  # fmt: skip
    assert r.status_code == 200 and "Hello, Raj Patel" in r.get_data(as_text=True)
    done = r.get_data(as_text=True)
    # Just signed in, the same link again is the "on your way" page with its automatic refresh.
    again = c.get("/portal/sign-in", query_string=query, headers={"X-Gateway-Client-IP": device}).get_data(as_text=True)
    return re.findall(r'href="(?!/)([^"]+)"', done) + re.findall(r'url=([^"]+)"', again)


def test_the_page_the_proxy_signed_for_this_device_is_where_it_goes(app: Flask) -> None:
    url = "https://www.bbc.co.uk/bitesize?topic=a&b=c"
    sig = sign(key(app), DEVICE, url, int(time.time()))
    places = sent_on_to(app, {"next": url, "next_sig": sig})
    assert places and all(p.replace("&amp;", "&") == url for p in places)


EVIL = [
    "https://evil.example/",
    "//evil.example/",
    "javascript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "https:\\\\evil.example\\",
    "http://www.bbc.co.uk@evil.example/",
    "http://evil.example/%0d%0aSet-Cookie:x=y",
    "http://evil.example/\r\nLocation: x",
    " https://evil.example/",
    "https://evil.example/\u2044x",
    "localhost/portal/sign-in",
]


@pytest.mark.parametrize("url", EVIL)
def test_a_link_nobody_signed_goes_nowhere(app: Flask, url: str) -> None:
    assert sent_on_to(app, {"next": url}) == []
    assert sent_on_to(app, {"next": url, "next_sig": f"{int(time.time())}.{'0' * 64}"}) == []


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "//evil.example/", "https:\\\\evil.example",
                                 "http://user@evil.example/", "http://localhost/portal/sign-in"])
def test_even_a_signed_link_must_be_a_plain_web_address_elsewhere(app: Flask, url: str) -> None:
    assert sent_on_to(app, {"next": url, "next_sig": sign(key(app), DEVICE, url, int(time.time()))}) == []


def test_a_signed_link_is_only_for_its_own_device_and_only_for_a_while(app: Flask) -> None:
    url = "https://evil.example/"
    # Genuinely signed for another device (the attacker's own redirect), then handed to this one.
    assert sent_on_to(app, {"next": url, "next_sig": sign(key(app), OTHER_DEVICE, url, int(time.time()))}) == []
    old = int(time.time()) - LIFETIME_SECONDS - 5
    assert sent_on_to(app, {"next": url, "next_sig": sign(key(app), DEVICE, url, old)}) == []
    future = int(time.time()) + 3600
    assert sent_on_to(app, {"next": url, "next_sig": sign(key(app), DEVICE, url, future)}) == []
    # Tampering with the URL after signing breaks the signature.
    sig = sign(key(app), DEVICE, "https://www.bbc.co.uk/", int(time.time()))
    assert sent_on_to(app, {"next": "https://www.bbc.co.uk.evil.example/", "next_sig": sig}) == []
    # A key of another gateway signs nothing here.
    assert sent_on_to(app, {"next": url, "next_sig": sign(b"x" * 64, DEVICE, url, int(time.time()))}) == []
