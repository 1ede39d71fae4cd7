"""The supervised-only ban through a real mitmdump with real clients: a ban written to the store by another process
blocks the person everywhere (HTTP, HTTPS through CONNECT, a never-intercept host, a second device they sign in on,
their own iPad with nobody signed in) within seconds; a teacher's supervised session lets them through until it
ends; a lifted or ended ban stops applying; a DoH attempt under a policy that bans at once bans through the
access-log writer; a policy reload and a database outage keep the ban."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.identity.directory import import_devices, import_people
from gateway.identity.people import Device, Person
from gateway.identity.sessions import start_session
from gateway.identity.types import IdentitySource
from gateway.store.bans import ban_person, end_supervision, lift_ban, start_supervision
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.circumvention import Ban, Incident
from tests.store.databases import PG_HOST, PG_PORT, TcpRelay, pg_schema_url  # noqa: F401 - fixture
from tests.support.clients import Fetched, curl, fetch, open_tunnel, ssl_context
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer
from tests.support.policies import demo_policy_with_devices
from tests.support.stores import in_store

pytestmark = pytest.mark.e2e

# What the store's follower is given to reach every proxy; generous polling deadlines for a loaded machine are the
# waits that follow an expected change back, not this.
LIVE_WITHIN = 5.0
PORTAL = "http://gateway.school.test:8080"
PAGE = {"Accept": "text/html"}
WIFI = "127.0.3"
AMY, AMY_SECOND, AMY_IPAD, BEN, CARA, DEV, EVE, FIN, GIL = (f"{WIFI}.{n}" for n in range(2, 11))
IPAD_MAC = "aa:bb:cc:00:03:04"
PEOPLE = [Person(name, name.title(), "pupil", year_group=5, school_class="5B")
          for name in ("amy.p", "ben.k", "cara.d", "dev.s", "eve.w", "fin.o", "gil.h")]  # fmt: skip
SIGNED_IN = {AMY: "amy.p", BEN: "ben.k", CARA: "cara.d", DEV: "dev.s", EVE: "eve.w", FIN: "fin.o", GIL: "gil.h"}


def policy_for(folder: Path) -> Path:
    """The demo policy with a pupil WiFi whose people sign in at the portal (their devices known by DHCP lease),
    and DNS over HTTPS banned at once."""
    wifi = f"  - {{name: pupil-wifi, subnets: [{WIFI}.0/24], group: pupil, identity: [portal, subnet]}}\n"
    return demo_policy_with_devices(folder, {}, replace={"networks:\n": "networks:\n" + wifi,
                                                         "  auto_ban: []\n": "  auto_ban: [doh]\n"})  # fmt: skip



def seed(db_url: str, folder: Path) -> Path:
    """The roster, Amy's iPad in the device register, everyone's portal sign-in; returns the lease file."""
    upgrade(db_url)
    now = datetime.now(UTC)
    with Session(make_engine(db_url)) as session, session.begin():
        import_people(session, PEOPLE)
        import_devices(session, [Device("amy-ipad", IPAD_MAC, "ipad", username="amy.p")])
        for address, username in SIGNED_IN.items():
            start_session(session, client_ip=address, source=IdentitySource.PORTAL, username=username, now=now)
    leases = folder / "dnsmasq.leases"
    leases.write_text(f"{int(time.time()) + 86400} {IPAD_MAC} {AMY_IPAD} amy-ipad *\n")
    return leases


def start(folder: Path, origin: OriginServer, db_url: str) -> Mitmdump:
    leases = seed(db_url, folder)
    return start_gateway(folder, policy_for(folder), origin=origin, gateway_db=db_url, gateway_leases=str(leases),
                         gateway_portal_url=PORTAL, gateway_identity_interval_ms=200,
                         gateway_reload_interval_ms=200)  # fmt: skip


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, origin):
    folder = tmp_path_factory.mktemp("bans")
    db_url = f"sqlite:///{folder / 'gateway.db'}"
    proxy = start(folder, origin, db_url)
    proxy.db_url = db_url  # type: ignore[attr-defined]
    yield proxy
    proxy.stop()


def get(proxy: Mitmdump, url: str, device: str, **kwargs: object) -> Fetched:
    return curl(url, proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=device, headers=PAGE, **kwargs)


def is_ban_page(got: Fetched) -> bool:
    return got.status == 403 and "You are on supervised-only access" in got.text and "ask your teacher" in got.text


def eventually(check: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until `check` holds; fails past `within`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"{what}: not within {within}s"
        time.sleep(0.1)
    return time.monotonic() - started


def ban(proxy: Mitmdump, username: str, **kwargs: object) -> Ban:
    store = in_store(proxy.db_url)  # type: ignore[attr-defined]
    return store(ban_person, username=username, display_name=username.title(), reason="test", created_by="head",
                 now=datetime.now(UTC), **kwargs)  # type: ignore[return-value]


def test_a_banned_pupil_is_blocked_everywhere_within_seconds_of_the_ban(gateway, origin):
    bbc = "http://www.bbc.co.uk/"
    eventually(lambda: get(gateway, bbc, AMY).status == 200, 10, "Amy browses before her ban")
    eventually(lambda: get(gateway, bbc, AMY_IPAD).status == 200, 10, "Amy's iPad browses before her ban")
    assert get(gateway, bbc, AMY_SECOND).status == 200  # nobody signed in there yet: a pupil by network

    ban(gateway, "amy.p")
    eventually(lambda: is_ban_page(get(gateway, bbc, AMY)), LIVE_WITHIN, "the ban reaches the proxy")
    origin.clear()
    # HTTPS: the CONNECT is decided as hers, and the page inside the tunnel is the ban page.
    assert is_ban_page(get(gateway, "https://www.bbc.co.uk/bitesize", AMY))
    # A never-intercept host is not passed through to her: intercepted, with the ban page (the gateway's certificate
    # is the one curl trusts here; the bank's own would fail).
    assert is_ban_page(get(gateway, "https://www.nhs.uk/", AMY))
    # Her iPad, with nobody signed in on it, is hers.
    assert is_ban_page(get(gateway, bbc, AMY_IPAD))
    assert not origin.seen()
    # Another pupil is not affected.
    assert get(gateway, bbc, BEN).status == 200

    # She signs in on a second device: the ban follows her there.
    in_store(gateway.db_url)(start_session, client_ip=AMY_SECOND, source=IdentitySource.PORTAL, username="amy.p",
                             now=datetime.now(UTC))  # fmt: skip
    eventually(lambda: is_ban_page(get(gateway, bbc, AMY_SECOND)), LIVE_WITHIN, "the ban on her second device")

    # The gateway's sign-in and report pages stay open to her; its other pages do not.
    assert get(gateway, f"{PORTAL}/portal/sign-in", AMY).status == 200
    assert get(gateway, f"{PORTAL}/report?url=https://x.example/", AMY).status == 200
    assert is_ban_page(get(gateway, f"{PORTAL}/request?url={bbc}", AMY))
    assert is_ban_page(get(gateway, f"{PORTAL}/portal/../logs", AMY, extra_args=["--path-as-is"]))

    # A policy reload keeps the ban.
    policy = gateway.workdir / "policy.yaml"
    mark = gateway.mark()
    policy.write_text(policy.read_text() + "\n# reloaded\n")
    gateway.wait_for_output(r"policy .* loaded", after=mark)
    assert is_ban_page(get(gateway, bbc, AMY))

    # Logged as a ban, for the officer.
    with sqlite3.connect(gateway.workdir / "gateway.db") as db:
        def logged() -> bool:
            return db.execute("SELECT count(*) FROM access_log WHERE username = 'amy.p' AND source = 'ban' "
                              "AND action = 'block' AND rule = 'supervised-only'").fetchone()[0] >= 4  # fmt: skip
        eventually(logged, 10, "the blocked attempts in the access log")


def test_a_supervised_session_lets_the_pupil_through_until_it_ends(gateway, origin):
    bbc = "http://www.bbc.co.uk/"
    made = ban(gateway, "cara.d")
    eventually(lambda: is_ban_page(get(gateway, bbc, CARA)), LIVE_WITHIN, "the ban reaches the proxy")
    store = in_store(gateway.db_url)
    store(start_supervision, username="cara.d", teacher="mr.jones", ends_at=datetime.now(UTC) + timedelta(seconds=8),
          note="ICT lesson", now=datetime.now(UTC))  # fmt: skip
    eventually(lambda: get(gateway, bbc, CARA).status == 200, LIVE_WITHIN, "the supervised session reaches the proxy")
    # The normal rules apply during it: Facebook is still blocked, by its rule.
    facebook = get(gateway, "http://www.facebook.com/", CARA)
    assert facebook.status == 403 and not is_ban_page(facebook)
    # It ends by itself, with nothing written to the store.
    eventually(lambda: is_ban_page(get(gateway, bbc, CARA)), 20, "the ban again after the session")
    # A teacher ends one early: the ban is back at once.
    second = store(start_supervision, username="cara.d", teacher="mr.jones",
                   ends_at=datetime.now(UTC) + timedelta(hours=1), note=None, now=datetime.now(UTC))  # fmt: skip
    eventually(lambda: get(gateway, bbc, CARA).status == 200, LIVE_WITHIN, "the second session")
    store(end_supervision, second.id, by="mr.jones", now=datetime.now(UTC))  # type: ignore[attr-defined]
    eventually(lambda: is_ban_page(get(gateway, bbc, CARA)), LIVE_WITHIN, "the ban after the session ended early")
    assert made.id == second.ban_id  # type: ignore[attr-defined]


def test_a_lifted_ban_or_one_past_its_end_no_longer_applies(gateway):
    bbc = "http://www.bbc.co.uk/"
    made = ban(gateway, "dev.s")
    eventually(lambda: is_ban_page(get(gateway, bbc, DEV)), LIVE_WITHIN, "the ban reaches the proxy")
    in_store(gateway.db_url)(lift_ban, made.id, by="head", note="spoke to parents", now=datetime.now(UTC))
    eventually(lambda: get(gateway, bbc, DEV).status == 200, LIVE_WITHIN, "the lift reaches the proxy")

    ban(gateway, "eve.w", ends_at=datetime.now(UTC) + timedelta(seconds=6))
    eventually(lambda: is_ban_page(get(gateway, bbc, EVE)), LIVE_WITHIN, "the short ban reaches the proxy")
    eventually(lambda: get(gateway, bbc, EVE).status == 200, 20, "the ban ends by itself")


def test_a_connection_passed_through_before_the_ban_carries_nothing_after_it(gateway, origin):
    eventually(lambda: get(gateway, "http://www.bbc.co.uk/", GIL).status == 200, 10, "Gil browses")
    status, sock = open_tunnel(gateway.proxy_url, "www.nhs.uk:443", source_address=GIL)
    assert " 200" in status
    request = b"GET /health HTTP/1.1\r\nHost: www.nhs.uk\r\n\r\n"
    with ssl_context(origin.ca_cert_path).wrap_socket(sock, server_hostname="www.nhs.uk") as tls:
        tls.sendall(request)
        answer = b""
        while b"origin ok: www.nhs.uk/health" not in answer:  # the bank's own certificate: passed through
            answer += tls.recv(65536)
        ban(gateway, "gil.h")
        eventually(lambda: is_ban_page(get(gateway, "http://www.bbc.co.uk/", GIL)), LIVE_WITHIN, "the ban")
        origin.clear()
        tls.settimeout(2)
        tls.sendall(request)
        with pytest.raises(TimeoutError):
            tls.recv(65536)
    assert not origin.seen(host="www.nhs.uk")


def test_an_attempt_the_policy_bans_at_once_bans_the_pupil(gateway, origin):
    bbc = "http://www.bbc.co.uk/"
    eventually(lambda: get(gateway, bbc, FIN).status == 200, 10, "Fin browses")
    query = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
    doh = fetch("http://dns.example/dns-query", proxy=gateway.proxy_url, source_address=FIN, method="POST",
                headers={"Content-Type": "application/dns-message", "Accept": "application/dns-message"},
                content=query)  # fmt: skip
    assert doh.status == 403 and not origin.seen(host="dns.example")
    # The writer records the incident and the ban in one transaction; the follower brings it to the proxy.
    eventually(lambda: is_ban_page(get(gateway, bbc, FIN)), 10, "the ban made at once")
    with Session(make_engine(gateway.db_url)) as session:
        made = session.scalars(sa.select(Ban).where(Ban.username == "fin.o")).one()
        incident = session.get(Incident, made.incident_id)
        assert made.created_by == "gateway" and made.ends_at - made.starts_at == timedelta(days=14)
        assert incident is not None and (incident.technique, incident.username) == ("doh", "fin.o")


@pytest.mark.postgres
def test_a_database_outage_keeps_the_ban(tmp_path, origin, pg_schema_url):  # noqa: F811
    _, url = pg_schema_url
    relay = TcpRelay((PG_HOST, PG_PORT))
    relay.up()
    through_relay = url.replace(f"{PG_HOST}:{PG_PORT}", f"127.0.0.1:{relay.port}")
    proxy = start(tmp_path, origin, through_relay)
    proxy.db_url = url  # type: ignore[attr-defined]
    bbc = "http://www.bbc.co.uk/"
    try:
        eventually(lambda: get(proxy, bbc, AMY).status == 200, 15, "Amy browses")
        ban(proxy, "amy.p")
        eventually(lambda: is_ban_page(get(proxy, bbc, AMY)), LIVE_WITHIN, "the ban reaches the proxy")
        mark = proxy.mark()
        relay.down()
        proxy.wait_for_output(r"the grants read last stay in force", after=mark, timeout=30)
        for _ in range(5):
            assert is_ban_page(get(proxy, bbc, AMY))
            time.sleep(0.3)
        assert get(proxy, bbc, BEN).status == 200
    finally:
        relay.down()
        proxy.stop()
