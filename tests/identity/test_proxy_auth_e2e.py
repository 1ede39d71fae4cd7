"""Proxy authentication for configured devices, through a real mitmdump: Basic against the roster."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.credentials import hash_secret
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.store.models.people import PersonRecord
from tests.support.clients import curl
from tests.support.policies import PROXY_AUTH_POLICY

pytestmark = pytest.mark.e2e

POLICY = PROXY_AUTH_POLICY


def test_basic_proxy_auth_against_the_roster(tmp_path: Path, mitmdump_proxy, origin_https, store_url: str,
                                             store: sessionmaker[Session]) -> None:
    with store.begin() as s:
        import_people(s, [Person("mrp", "Raj Patel", "staff")])
        s.query(PersonRecord).one().password_hash = hash_secret("correct horse")
    (tmp_path / "lists").mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proxy = mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": store_url, "gateway_proxy_auth": "roster",
        "gateway_proxy_auth_clients": "127.0.0.50/32",
    }, origin=origin_https, ready_line="identity sources running")
    host, port = proxy.proxy_url.split("//")[1].split(":")
    good = f"http://mrp:correct%20horse@{host}:{port}"
    bad = f"http://mrp:wrong@{host}:{port}"

    def get(url: str, proxy_url: str, device: str):  # type: ignore[no-untyped-def]
        return curl(url, proxy=proxy_url, ca=proxy.ca_cert_path, source_address=device)

    assert get("http://staffroom.example/", proxy.proxy_url, "127.0.0.50").status == 407
    assert get("http://staffroom.example/", bad, "127.0.0.50").status == 407
    assert get("http://staffroom.example/", good, "127.0.0.50").status == 200
    # HTTPS: the CONNECT carries the credentials, the tunnel's requests count as Mr Patel's.
    assert get("https://staffroom.example/", good, "127.0.0.50").status == 200
    # A device not configured for proxy authentication is not asked, and stays at its network's group.
    assert get("http://staffroom.example/", proxy.proxy_url, "127.0.0.51").status == 403
