"""Age-gated sign-ups through a real mitmdump, people signed in to the proxy against the roster: a 12-year-old
pupil is kept from a sign-up page a 13-year-old reaches, until the birthday in the school's time zone; every
spelling of the page; no date of birth; staff; and a whole-site gate on a never-intercepted site."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.identity.credentials import hash_secret
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.store.engine import make_engine, session_factory
from gateway.store.migrate import upgrade
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.people import PersonRecord
from tests.support.clients import Fetched, curl
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer
from tests.support.policies import ROOT, always_lesson_policy

pytestmark = pytest.mark.e2e

DEVICE = "127.0.0.50"
PASSWORD = "correct horse"
# Tom turns 13 on Tuesday 8 September 2026; Amy is 13 already; Nia's roster row has no date of birth.
PEOPLE = [
    Person("tom", "Tom Twelve", "pupil", year_group=8, date_of_birth=date(2013, 9, 8)),
    Person("amy", "Amy Thirteen", "pupil", year_group=8, date_of_birth=date(2013, 1, 15)),
    Person("nia", "Nia Unknown", "pupil", year_group=8),
    Person("mrs.k", "Helen Khan", "staff"),
]
MONDAY = "2026-09-07T10:00"

POLICY = always_lesson_policy("""\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
networks:
  - {name: desktops, subnets: [127.0.0.0/24], group: guest, identity: [proxy_auth, subnet]}
""", f"""\
never_intercept: {{domains: [chatzone.example]}}
age_limits:
  groups: [pupil]
  files: [{ROOT / "policies" / "age_limits.yaml"}]
  sites:
    - {{name: ChatZone, minimum_age: 16, domains: [chatzone.example], whole_site: true}}
""")


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("age-clock") / "clock"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, origin: OriginServer, clock_file: Path) -> Iterator[Mitmdump]:
    folder = tmp_path_factory.mktemp("age-gate")
    db = f"sqlite:///{folder / 'gateway.db'}"
    upgrade(db)
    with session_factory(make_engine(db)).begin() as s:
        import_people(s, PEOPLE)
        for record in s.scalars(select(PersonRecord)):
            record.password_hash = hash_secret(PASSWORD)
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    clock_file.write_text(MONDAY)
    proxy = start_gateway(folder, policy, origin=origin, gateway_clock_file=str(clock_file),
                          gateway_proxy_auth="roster", gateway_proxy_auth_clients=f"{DEVICE}/32")  # fmt: skip
    proxy.wait_for_output("identity sources running", timeout=30)
    yield proxy
    proxy.stop()


def get(gateway: Mitmdump, user: str, url: str, **kwargs) -> Fetched:  # type: ignore[no-untyped-def]
    host, port = gateway.proxy_url.split("//")[1].split(":")
    proxy = f"http://{user}:{PASSWORD.replace(' ', '%20')}@{host}:{port}"
    kwargs.setdefault("ca", gateway.ca_cert_path)
    return curl(url, proxy=proxy, source_address=DEVICE, headers={"Accept": "text/html"}, **kwargs)


def set_clock(clock_file: Path, text: str) -> None:
    partial = clock_file.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(clock_file)


def status_becomes(gateway: Mitmdump, user: str, url: str, wanted: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (got := get(gateway, user, url).status) != wanted:
        assert time.monotonic() < deadline, f"{user} {url}: still {got}"
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def monday(clock_file: Path, gateway: Mitmdump) -> None:
    set_clock(clock_file, MONDAY)
    status_becomes(gateway, "tom", "https://www.tiktok.com/signup", 403)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_12_year_old_is_kept_from_a_sign_up_page_a_13_year_old_reaches(gateway, origin, scheme) -> None:
    origin.clear()
    page = get(gateway, "tom", f"{scheme}://www.tiktok.com/signup")
    assert page.status == 403
    assert "You need to be 13 to join TikTok." in page.text and "TikTok (13+)" in page.text
    assert "Ask for access" not in page.text and "When you are old enough" in page.text
    assert not origin.seen(host="www.tiktok.com")
    assert get(gateway, "amy", f"{scheme}://www.tiktok.com/signup").status == 200
    # Only the sign-up pages: watching is for the school's rules to decide.
    assert get(gateway, "tom", f"{scheme}://www.tiktok.com/@bbc/video/1").status == 200


def test_the_birthday_counts_from_midnight_in_the_schools_time_zone(gateway, clock_file) -> None:
    # 23:30 in London on the day before (22:30 UTC): still 12.
    set_clock(clock_file, "2026-09-07T22:30+00:00")
    time.sleep(0.6)
    assert get(gateway, "tom", "https://www.tiktok.com/signup").status == 403
    # 00:30 in London on the birthday, though still the 7th in UTC: 13.
    set_clock(clock_file, "2026-09-07T23:30+00:00")
    status_becomes(gateway, "tom", "https://www.tiktok.com/signup", 200)
    set_clock(clock_file, "2026-09-08T10:00")
    time.sleep(0.6)
    assert get(gateway, "tom", "https://www.tiktok.com/signup").status == 200


@pytest.mark.parametrize("url", [
    "https://www.tiktok.com//SignUp/", "https://tiktok.com/signup?lang=en&redirect=x", "https://www.tiktok.com/%73ignup",
    "https://www.tiktok.com/foo/../signup", "http://WWW.TIKTOK.COM/signup/phone-or-email/email",
    "https://www.tiktok.com/signup;x=1", "https://accounts.snapchat.com/accounts/signup", "https://discord.com/register",
    "https://www.instagram.com/accounts/emailsignup/", "https://x.com/i/flow/signup",
])  # fmt: skip
def test_every_spelling_of_a_sign_up_page_is_gated(gateway, url) -> None:
    assert get(gateway, "tom", url).status == 403


def test_pages_that_only_look_like_sign_up_pages_are_not(gateway) -> None:
    assert get(gateway, "tom", "https://www.tiktok.com/signupnow").status == 200
    assert get(gateway, "tom", "https://www.snapchat.com/accounts/signup").status == 200  # another host's path


def test_no_date_of_birth_is_treated_as_too_young(gateway) -> None:
    page = get(gateway, "nia", "https://www.tiktok.com/signup")
    assert page.status == 403 and "does not know your date of birth" in page.text


def test_staff_are_not_age_checked(gateway) -> None:
    assert get(gateway, "mrs.k", "https://www.tiktok.com/signup").status == 200


def test_a_whole_site_gate_closes_the_connection_before_anything_is_passed_through(gateway, origin) -> None:
    origin.clear()
    # Amy is 13: ChatZone is 16+. Its never-intercept entry would pass her TLS through untouched; the gate answers
    # the CONNECT itself and shows the block page instead.
    page = get(gateway, "amy", "https://chatzone.example/rooms")
    assert page.status == 403 and "You need to be 16 to use ChatZone." in page.text
    assert not origin.seen(host="chatzone.example")
    assert get(gateway, "amy", "http://chatzone.example/").status == 403
    # Staff are not age-checked: passed through untouched (the origin's own certificate, not the gateway's).
    assert get(gateway, "mrs.k", "https://chatzone.example/", ca=origin.ca_cert_path).status == 200


def test_age_blocks_are_logged_with_their_source(gateway, tmp_path_factory) -> None:
    get(gateway, "tom", "https://www.tiktok.com/signup?logged=1")
    db = next(Path(str(tmp_path_factory.getbasetemp())).glob("age-gate*/gateway.db"))
    with session_factory(make_engine(f"sqlite:///{db}"))() as s:
        deadline = time.monotonic() + 10
        while not (rows := s.scalars(select(AccessLogEntry).where(AccessLogEntry.username == "tom",
                                                                  AccessLogEntry.source == "age")).all()):  # fmt: skip
            assert time.monotonic() < deadline, "no age row logged"
            time.sleep(0.2)
            s.expire_all()
    assert rows[0].action == "block" and rows[0].host == "www.tiktok.com"
