"""Proxy authentication against a real directory: Debian's OpenLDAP (slapd) on a free port, a real mitmdump
running addons/gateway.py with an LDAP spec as mitmproxy's proxyauth takes it, curl as the staff desktop."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.directory import import_people
from gateway.identity.ldap_auth import LdapSettings, LdapUnavailable, LdapValidator
from gateway.identity.people import Person
from gateway.store.models.access_log import AccessLogEntry
from tests.support.clients import Fetched, curl
from tests.support.slapd import LdapUser, Slapd
from tests.support.policies import PROXY_AUTH_POLICY

POLICY = PROXY_AUTH_POLICY
MRP = LdapUser("mrp", "Raj Patel", "staff", "correct horse battery")
JONES = LdapUser("sjones", "Sarah Jones", "staff", "Staple-9-Horse")
BEN = LdapUser("ben", "Ben Smith", "pupils", "ben's dinosaur 7")
DESKTOP = "127.0.0.50"
OTHER_DEVICE = "127.0.0.51"


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Slapd]:
    with Slapd(tmp_path / "slapd", [MRP, JONES, BEN]) as server:
        yield server


def ldap_spec(server: Slapd, port: int | None = None) -> str:
    return (f"ldap:127.0.0.1:{port or server.port}:{server.admin_dn}:{server.admin_password}:"
            f"{server.people()}?search_filter_key=uid")


def settings(server: Slapd) -> LdapSettings:
    return LdapSettings(host="127.0.0.1", port=server.port, use_ssl=False, bind_dn=server.admin_dn,
                        bind_password=server.admin_password, subtree=server.people(), filter_key="uid")


def test_validator_against_slapd(directory: Slapd) -> None:
    check = LdapValidator(settings(directory))
    assert check("mrp", MRP.password) and check(" MRP ", MRP.password)
    assert check("ben", BEN.password)
    assert not check("mrp", BEN.password)
    assert not check("mrp", "")  # an unauthenticated bind would succeed: never a sign-in
    assert not check("nobody", MRP.password)
    assert not check("*", MRP.password) and not check("m*", MRP.password)  # filter characters are escaped
    # Many checks at once from worker threads, as the proxy makes them: each gets its own answer.
    results: dict[tuple[str, str], bool] = {}
    cases = [(u.username, p) for u in (MRP, JONES, BEN) for p in (MRP.password, JONES.password, BEN.password)]

    def run(case: tuple[str, str]) -> None:
        results[case] = LdapValidator(settings(directory), cache_seconds=0)(*case)

    threads = [threading.Thread(target=run, args=(c,)) for c in cases * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {c for c, ok in results.items() if ok} == {(MRP.username, MRP.password), (JONES.username, JONES.password),
                                                      (BEN.username, BEN.password)}  # fmt: skip
    # A success is remembered; when the directory stops, an unknown password is an outage, not "wrong".
    directory.stop()
    assert check("mrp", MRP.password)
    with pytest.raises(LdapUnavailable):
        check("sjones", JONES.password)


@pytest.mark.e2e
def test_ldap_proxy_auth_through_mitmdump(tmp_path: Path, directory: Slapd, mitmdump_proxy, origin_https,
                                          store_url: str, store: sessionmaker[Session]) -> None:
    with store.begin() as s:
        import_people(s, [Person("mrp", "Raj Patel", "staff"), Person("sjones", "Sarah Jones", "staff"),
                          Person("ben", "Ben Smith", "pupil", year_group=6, school_class="6B")])
    (tmp_path / "lists").mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proxy = mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": store_url, "gateway_spool": str(tmp_path / "spool"),
        "gateway_proxy_auth": ldap_spec(directory), "gateway_proxy_auth_clients": f"{DESKTOP}/32",
    }, origin=origin_https, ready_line="identity sources running")

    def get(url: str, user: LdapUser | None = None, password: str | None = None,
            device: str = DESKTOP) -> Fetched:
        auth = ["--proxy-user", f"{user.username}:{password or user.password}"] if user else []
        return curl(url, proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=device,
                    headers={"Accept": "text/html"}, extra_args=auth)

    assert get("http://staffroom.example/").status == 407
    refused = get("http://staffroom.example/", MRP, "wrong password")
    assert refused.status == 407 and refused.headers["proxy-authenticate"].startswith("Basic")
    assert get("http://staffroom.example/", LdapUser("*", "", "", ""), MRP.password).status == 407
    assert not origin_https.seen(host="staffroom.example")

    assert get("http://staffroom.example/notes", MRP).status == 200
    # HTTPS: the CONNECT carries the credentials; the requests in the tunnel are Mr Patel's.
    assert get("https://staffroom.example/timetable", MRP).status == 200
    with pytest.raises(subprocess.CalledProcessError) as refused_tunnel:
        get("https://staffroom.example/", MRP, "wrong password")
    assert b"CONNECT tunnel failed, response 407" in refused_tunnel.value.stderr
    blocked = get("http://games.example/", MRP)
    assert blocked.status == 403 and "Signed in as Raj Patel" in blocked.text and "Group: staff" in blocked.text
    # A pupil on the shared desktop signs in with their directory password: pupil rules, their name.
    pupil = get("https://staffroom.example/", BEN)
    assert pupil.status == 403 and "Signed in as Ben Smith" in pupil.text
    # A device not listed for proxy authentication is not asked, and stays at its network's group.
    assert get("http://staffroom.example/", device=OTHER_DEVICE).status == 403

    # The directory goes away: signed-in staff (remembered for a while) carry on; a new sign-in is refused
    # with a warning in the gateway's log, and the gateway keeps running.
    directory.stop()
    mark = proxy.mark()
    assert get("http://staffroom.example/again", MRP).status == 200
    assert get("http://staffroom.example/", JONES).status == 407
    proxy.wait_for_output(r"the directory cannot check passwords", after=mark)

    proxy.stop()  # flushes the access log
    with store() as s:
        rows = s.execute(sa.select(AccessLogEntry.username, AccessLogEntry.identity_source, AccessLogEntry.host,
                                   AccessLogEntry.path, AccessLogEntry.action)).all()
    assert ("mrp", "proxy_auth", "staffroom.example", "/notes", "allow") in rows
    assert ("mrp", "proxy_auth", "staffroom.example", "/timetable", "allow") in rows
    assert ("ben", "proxy_auth", "staffroom.example", "/", "block") in rows
    assert not any(r.username == "sjones" for r in rows)


@pytest.mark.e2e
def test_a_directory_that_does_not_answer_holds_up_no_one_else(tmp_path: Path, mitmdump_proxy, origin_http,
                                                               store_url: str) -> None:
    # A listening socket nobody accepts on: connections open, no LDAP answer ever comes.
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:
        (tmp_path / "lists").mkdir()
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        port = silent.getsockname()[1]
        proxy = mitmdump_proxy(["addons/gateway.py"], {
            "gateway_policy": str(policy), "gateway_db": store_url,
            "gateway_proxy_auth": f"ldap:127.0.0.1:{port}:cn=admin,dc=school,dc=test:pw:dc=school,dc=test",
            "gateway_proxy_auth_clients": f"{DESKTOP}/32",
        }, origin=origin_http, ready_line="identity sources running")
        waiting: list[Fetched] = []
        stuck = threading.Thread(target=lambda: waiting.append(curl(
            "http://staffroom.example/", proxy=proxy.proxy_url, source_address=DESKTOP, timeout=30,
            extra_args=["--proxy-user", "mrp:pw"])))
        stuck.start()
        try:
            # While the desktop's sign-in waits on the directory, other devices are served.
            for n in range(3):
                assert curl(f"http://learn.example/{n}", proxy=proxy.proxy_url, source_address=OTHER_DEVICE,
                            timeout=4).status == 200
            assert stuck.is_alive()
        finally:
            stuck.join()
        assert waiting[0].status == 407
        proxy.wait_for_output(r"the directory cannot check passwords")
