"""Captive-portal sign-in: the Flask views on their own, then a full sign-in through a real mitmdump."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from gateway.identity.credentials import card_token_sha256, hash_secret, picture_code_text
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.sessions import live_bindings
from gateway.identity.types import IdentitySource as S
from gateway.store.models.people import PersonRecord
from gateway.web.app import ConsoleConfig, create_app
from gateway.identity.portal_link import sign
from tests.support.clients import httpx_client
from tests.support.policies import always_lesson_policy

POLICY = always_lesson_policy(
    """\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}, infants: {}}
default_group: guest
sign_in: {picture_code_year_groups: [0, 1, 2], idle_timeout_minutes: 30}
networks:
  - name: classroom-wifi
    subnets: [127.0.0.0/24]
    group: guest
    identity: [portal, subnet]
    sign_in_required: true
""",
)
CODE = ["cat", "sun", "boat", "tree"]


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    (tmp_path / "lists").mkdir(exist_ok=True)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def people(store: sessionmaker[Session]) -> None:
    with store.begin() as s:
        import_people(s, [Person("mrp", "Raj Patel", "staff"),
                          Person("amy", "Amy Jones", "infants", year_group=1, school_class="1A"),
                          Person("ben", "Ben Smith", "pupil", year_group=5, school_class="5S")])
        for r in s.query(PersonRecord):
            r.password_hash = hash_secret(f"{r.username}-password")
            r.picture_code_hash = hash_secret(picture_code_text(CODE))
        s.query(PersonRecord).filter_by(username="amy").one().card_token_sha256 = card_token_sha256("amy-card")


@pytest.fixture
def app(store_url: str, policy_path: Path, people: None, tmp_path: Path) -> Flask:
    app = create_app(ConsoleConfig(db_url=store_url, secret_key="test-secret", policy_path=str(policy_path),
                                   portal_link_key_file=str(tmp_path / "portal-link-key"), testing=True))
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def signed(app: Flask, client_ip: str, url: str) -> dict[str, str]:
    """next= and next_sig= as the proxy sends them to `client_ip`."""
    return {"next": url, "next_sig": sign(app.config["GATEWAY_PORTAL_LINK_KEY"], client_ip, url, int(time.time()))}


def bound(store: sessionmaker[Session]) -> dict[str, str]:
    with store() as s:
        return {ip: b.username for ip, b in live_bindings(s)[S.PORTAL].items()}


def test_password_sign_in_binds_the_address_the_proxy_reports(app: Flask, store: sessionmaker[Session]) -> None:
    c = app.test_client()
    r = c.post("/portal/sign-in", data={"username": "MrP", "password": "mrp-password",
                                        **signed(app, "127.0.0.40", "http://x.example/")},
               headers={"X-Gateway-Client-IP": "127.0.0.40"})
    assert r.status_code == 200 and b"Hello, Raj Patel" in r.data and b'href="http://x.example/"' in r.data
    assert bound(store) == {"127.0.0.40": "mrp"}
    # The header from anyone but the proxy is ignored: this binds the peer's own address.
    c.post("/portal/sign-in", data={"username": "ben", "password": "ben-password"},
           headers={"X-Gateway-Client-IP": "127.0.0.41"}, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert bound(store) == {"127.0.0.40": "mrp", "10.9.9.9": "ben"}
    r = c.post("/portal/sign-out", headers={"X-Gateway-Client-IP": "127.0.0.40"})
    assert r.status_code == 200 and bound(store) == {"10.9.9.9": "ben"}


def test_failed_sign_ins_stop_the_guessing_device_not_the_person(app: Flask, store: sessionmaker[Session]) -> None:
    c = app.test_client()
    guesser = {"X-Gateway-Client-IP": "127.0.0.50"}
    for _ in range(5):
        r = c.post("/portal/sign-in", data={"username": "ben", "password": "guess"}, headers=guesser)
        assert r.status_code == 401 and b"do not match" in r.data
    # The guessing device may not try that name again, even with the right password...
    r = c.post("/portal/sign-in", data={"username": "ben", "password": "ben-password"}, headers=guesser)
    assert r.status_code == 429 and b"on this device" in r.data and bound(store) == {}
    # ...but Ben on his own device signs in at once, and so does anyone else.
    started = time.monotonic()
    r = c.post("/portal/sign-in", data={"username": "ben", "password": "ben-password"},
               headers={"X-Gateway-Client-IP": "127.0.0.60"})
    assert r.status_code == 200 and bound(store) == {"127.0.0.60": "ben"} and time.monotonic() - started < 3
    # Ten failures from one device stop it for every name.
    for n in range(10):
        c.post("/portal/sign-in", data={"username": f"nobody{n}", "password": "x"},
               headers={"X-Gateway-Client-IP": "127.0.0.61"})
    r = c.post("/portal/sign-in", data={"username": "mrp", "password": "mrp-password"},
               headers={"X-Gateway-Client-IP": "127.0.0.61"})
    assert r.status_code == 429 and b"from this device" in r.data
    r = c.post("/portal/sign-in", data={"username": "mrp", "password": "mrp-password"},
               headers={"X-Gateway-Client-IP": "127.0.0.62"})
    assert r.status_code == 200


def test_wrong_picture_codes_on_one_tablet_do_not_keep_the_pupil_out(app: Flask, store: sessionmaker[Session]) -> None:
    c = app.test_client()
    for _ in range(6):
        r = c.post("/portal/pictures/pupil/amy", data=pictures(["moon", "moon", "moon", "moon"]),
                   headers={"X-Gateway-Client-IP": "127.0.0.80"})
        assert r.status_code in (401, 429) and bound(store) == {}
    assert r.status_code == 429
    r = c.post("/portal/pictures/pupil/amy", data=pictures(CODE), headers={"X-Gateway-Client-IP": "127.0.0.81"})
    assert r.status_code == 200 and bound(store) == {"127.0.0.81": "amy"}


def test_a_forged_client_address_from_a_device_is_ignored(app: Flask, store: sessionmaker[Session]) -> None:
    """Only the proxy (on the loopback address) may say which device it speaks for."""
    c = app.test_client()
    r = c.post("/portal/sign-in", data={"username": "ben", "password": "ben-password"},
               headers={"X-Gateway-Client-IP": "127.0.0.2"}, environ_base={"REMOTE_ADDR": "10.1.1.5"})
    assert r.status_code == 200 and bound(store) == {"10.1.1.5": "ben"}
    r = c.post("/portal/sign-out", headers={"X-Gateway-Client-IP": "10.1.1.5"}, environ_base={"REMOTE_ADDR": "10.1.1.6"})
    assert bound(store) == {"10.1.1.5": "ben"}, "a device cannot sign another out"
    assert c.post("/portal/sign-out", headers={"X-Gateway-Client-IP": "not-an-address"}).status_code == 400


def pictures(code: list[str]) -> dict[str, str]:
    """The picture form as a browser sends it: one radio group per position."""
    return {f"picture-{i}": p for i, p in enumerate(code)}


def test_young_pupils_sign_in_with_pictures_or_card_older_ones_cannot(app: Flask, store: sessionmaker[Session]) -> None:
    c = app.test_client()
    ip = {"X-Gateway-Client-IP": "127.0.0.70"}
    assert b"1A" in c.get("/portal/pictures").data and b"5S" not in c.get("/portal/pictures").data
    assert b"Amy J." in c.get("/portal/pictures/1A").data
    assert c.get("/portal/pictures/pupil/ben").status_code == 404
    r = c.post("/portal/pictures/pupil/amy", data=pictures(["cat", "sun", "boat", "moon"]), headers=ip)
    assert r.status_code == 401 and bound(store) == {}
    r = c.post("/portal/pictures/pupil/amy", data=pictures(CODE), headers=ip)
    assert r.status_code == 200 and bound(store) == {"127.0.0.70": "amy"}
    assert b"Are you Amy J.?" in c.get("/portal/card/amy-card").data
    assert c.get("/portal/card/wrong").status_code == 404
    r = c.post("/portal/card", data={"token": "amy-card"}, headers={"X-Gateway-Client-IP": "127.0.0.71"})
    assert r.status_code == 200 and bound(store)["127.0.0.71"] == "amy"


def test_sign_in_page_escapes_what_it_echoes(app: Flask) -> None:
    r = app.test_client().get("/portal/sign-in", query_string=signed(app, "127.0.0.1", 'http://x.example/"><script>'))
    assert b"<script>" not in r.data and b"&#34;&gt;&lt;script&gt;" in r.data


@pytest.fixture
def served_app(store_url: str, policy_path: Path, people: None) -> Iterator[str]:
    app = create_app(ConsoleConfig(db_url=store_url, secret_key="test-secret", policy_path=str(policy_path)))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.e2e
def test_full_portal_sign_in_through_the_proxy(mitmdump_proxy, origin_http, served_app: str, store_url: str,
                                               policy_path: Path) -> None:
    proxy = mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy_path), "gateway_db": store_url, "gateway_portal_url": served_app,
        "gateway_identity_interval_ms": 200,
        # The lesson site is a loopback origin, which the gateway refuses unless told it may reach it.
        "gateway_reachable_internal": [origin_http.address],
    }, ready_line="identity sources running")
    site = f"http://127.0.0.1:{origin_http.port}/lesson"
    with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.30") as client:
        first = client.get(site, headers={"Accept": "text/html"})
        assert first.status_code == 302
        sign_in_url = first.headers["location"]
        assert sign_in_url.startswith(f"{served_app}/portal/sign-in?next=")
        page = client.get(sign_in_url)
        assert page.status_code == 200 and "Sign in to the school WiFi" in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        done = client.post(f"{served_app}/portal/sign-in",
                           data={"csrf_token": token, "username": "mrp", "password": "mrp-password", "next": site})
        assert done.status_code == 200 and "Hello, Raj Patel" in done.text and "127.0.0.30" in done.text
        deadline = time.monotonic() + 5
        while client.get(site).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get(site).status_code == 200
        assert origin_http.seen(path="/lesson")
        # Another device at another address is still sent to sign in.
    with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.31") as other:
        assert other.get(site).status_code == 302
    with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.30") as client:
        page = client.get(f"{served_app}/portal/sign-in")
        assert "signed in as <strong>mrp</strong>" in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert client.post(f"{served_app}/portal/sign-out", data={"csrf_token": token}).status_code == 200
        deadline = time.monotonic() + 5
        while client.get(site).status_code != 302 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get(site).status_code == 302


@pytest.mark.e2e
def test_through_the_proxy_each_device_is_itself(mitmdump_proxy, served_app: str, store_url: str,
                                                 policy_path: Path, store: sessionmaker[Session]) -> None:
    """Wrong picture codes on one tablet do not keep the pupil out on another, and a device that claims another's
    address in the header signs in only itself."""
    proxy = mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy_path), "gateway_db": store_url, "gateway_portal_url": served_app,
        "gateway_identity_interval_ms": 200,
    }, ready_line="identity sources running")
    amy = f"{served_app}/portal/pictures/pupil/amy"

    def try_code(client, code: list[str]):  # type: ignore[no-untyped-def]
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(amy).text).group(1)
        return client.post(amy, data={"csrf_token": token, **pictures(code)})

    with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.32") as tablet:
        for _ in range(5):
            assert try_code(tablet, ["moon"] * 4).status_code == 401
        assert try_code(tablet, CODE).status_code == 429
    with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.33") as own_tablet:
        signed_in = try_code(own_tablet, CODE)
        assert signed_in.status_code == 200 and "127.0.0.33" in signed_in.text
    with httpx_client(proxy=proxy.proxy_url, source_address="127.0.0.34",
                      headers={"X-Gateway-Client-IP": "127.0.0.2"}) as forger:
        page = forger.get(f"{served_app}/portal/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        forger.post(f"{served_app}/portal/sign-in", data={"csrf_token": token, "username": "ben",
                                                          "password": "ben-password"})  # fmt: skip
    assert bound(store) == {"127.0.0.33": "amy", "127.0.0.34": "ben"}
