"""The block page tells a requester where their unblock request stands, through a real mitmdump on SQLite and
PostgreSQL: each step taken in the store (as the console takes it) shows on that person's next block page within
5 seconds, in the words the request form uses, escaped; nobody else's block page says anything about it.

Amy and Ben are pupils signed in through the portal on their own addresses; a third address has nobody signed in.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.sessions import start_session
from gateway.identity.types import IdentitySource
from gateway.policy.model import ExceptionGrant
from gateway.store.engine import make_engine, session_factory
from gateway.store.migrate import upgrade
from gateway.store.unblock_requests import Asked, add_information, add_request, approve, officer_step, reject
from tests.store.databases import PG_HOST, PG_PORT, pg_schema_url  # noqa: F401 - a fixture
from tests.support.clients import curl
from tests.support.mitmdump import Mitmdump
from tests.support.pg_standin import PgStandIn
from tests.support.policies import always_lesson_policy
from tests.support.stores import in_store

pytestmark = pytest.mark.e2e

AMY, BEN, NOBODY = "127.0.0.2", "127.0.0.3", "127.0.0.4"
LIVE_WITHIN = 5.0
FORM = "http://gateway.school.example/request"
POLICY = always_lesson_policy(
    f"""\
school: {{name: Test Primary School, contact: the e-safety officer, request_url: "{FORM}"}}
groups: {{pupil: {{}}, guest: {{}}}}
default_group: guest
networks:
  - {{name: classroom-wifi, subnets: [127.0.0.0/24], group: guest, identity: [portal, subnet]}}
""",
    """\
lists:
  games: {domains: [games.example]}
rules:
  - {id: no-games, lists: [games], action: block, reason: Games are not allowed in lessons}
""",
)
ASKED_ON = r"You asked for access on \d{1,2} [A-Z][a-z]{2}: "
HOSTILE = "<script>alert('pwned')</script> Not <b>for</b> lessons"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'gateway.db'}" if request.param == "sqlite" else (
        request.getfixturevalue("pg_schema_url")[1])  # fmt: skip
    upgrade(url)
    with session_factory(make_engine(url)).begin() as s:
        import_people(s, [Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B"),
                          Person("ben", "Ben Smith", "pupil", year_group=5, school_class="5C")])  # fmt: skip
        for ip, username in ((AMY, "amy"), (BEN, "ben")):
            start_session(s, client_ip=ip, source=IdentitySource.PORTAL, username=username, now=datetime.now(UTC))
    return url


@pytest.fixture
def gateway(mitmdump_proxy, origin_http, db_url: str, tmp_path: Path) -> Mitmdump:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": db_url, "gateway_spool": str(tmp_path / "spool"),
        "gateway_identity_interval_ms": 200, "gateway_grants_interval_ms": 200,
    }, origin=origin_http, ready_line="identity sources running")  # fmt: skip



def visit(proxy: Mitmdump, ip: str, url: str = "http://games.example/") -> tuple[int, str]:
    """What a browser on `ip` gets for `url` (https through a CONNECT, trusting the gateway's CA): status and page."""
    got = curl(url, proxy=proxy.proxy_url, source_address=ip, headers={"Accept": "text/html"},
               ca=proxy.ca_cert_path if url.startswith("https:") else None)  # fmt: skip
    return got.status, got.body.decode()


def block_page_says(proxy: Mitmdump, ip: str, pattern: str, url: str = "http://games.example/") -> str:
    """The block page once it matches `pattern` (a regular expression); fails past LIVE_WITHIN."""
    started = time.monotonic()
    while True:
        status, page = visit(proxy, ip, url)
        if status == 403 and re.search(pattern, page):
            return page
        assert time.monotonic() - started < LIVE_WITHIN, f"{ip} {url}: {status}, not {pattern!r} in\n{page}"
        time.sleep(0.1)


def says_nothing_of_requests(proxy: Mitmdump, ip: str, url: str = "http://games.example/") -> None:
    status, page = visit(proxy, ip, url)
    assert status == 403 and "You asked" not in page and "Ask for access" in page


def asked(username: str | None, ip: str, name: str, host: str = "games.example", extent: str = "site") -> Asked:
    return Asked(username=username, display_name=name, client_ip=ip, group_name="pupil", school_class="5B",
                 year_group=5, url=f"http://{host}/", host=host, rule="no-games", list_name="games",
                 reference=None, why="<b>For our maths game</b>", extent=extent, audience="me",
                 duration="lesson")  # fmt: skip


def test_each_step_shows_on_the_requesters_block_page_and_nobody_elses(gateway: Mitmdump, db_url: str) -> None:
    store = in_store(db_url)
    now = datetime.now(UTC)
    says_nothing_of_requests(gateway, AMY)
    number = store(add_request, asked("amy", AMY, "Amy Jones"), now).id  # type: ignore[attr-defined]
    block_page_says(gateway, AMY, ASKED_ON + "waiting for the e-safety officer")
    # She asked for the whole site: a page under it says so too.
    block_page_says(gateway, AMY, ASKED_ON + "waiting for the e-safety officer", "http://www.games.example/")
    says_nothing_of_requests(gateway, BEN)
    says_nothing_of_requests(gateway, NOBODY)

    store(officer_step, number, status="more_info", by="officer", note="Which lesson is it for?", now=now)
    page = block_page_says(gateway, AMY, ASKED_ON + "the e-safety officer asked a question")
    assert f'Which lesson is it for? — <a href="{FORM}">answer it here</a>' in page
    says_nothing_of_requests(gateway, BEN)

    store(add_information, number, username="amy", client_ip=AMY, text="Year 5 maths, Tuesday", now=now)
    block_page_says(gateway, AMY, ASKED_ON + "waiting for the e-safety officer")

    # The officer's note to the headteacher is not for the pupil.
    store(officer_step, number, status="forwarded", by="officer", note="Her third this week", now=now,
          recommendation="reject")  # fmt: skip
    page = block_page_says(gateway, AMY, ASKED_ON + "waiting for the headteacher")
    assert "third this week" not in page

    store(reject, number, by="head", note=HOSTILE, now=now)
    page = block_page_says(gateway, AMY, ASKED_ON + "not approved — ")
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; Not &lt;b&gt;for&lt;/b&gt; lessons" in page
    assert "<script>" not in page and "<b>for</b>" not in page
    says_nothing_of_requests(gateway, BEN)
    says_nothing_of_requests(gateway, NOBODY)

    # A name typed on a device nobody is signed in on: that device sees it, the pupils do not.
    store(add_request, asked(None, NOBODY, "Visitor <i>Vic</i>"), now)
    block_page_says(gateway, NOBODY, ASKED_ON + "waiting for the e-safety officer")
    block_page_says(gateway, AMY, ASKED_ON + "not approved — ")
    says_nothing_of_requests(gateway, BEN)


def test_the_line_shows_on_the_block_page_of_an_https_site(gateway: Mitmdump, db_url: str) -> None:
    # Schools carry HTTPS: the blocked CONNECT is answered by the gateway, whose block page carries the same line.
    store = in_store(db_url)
    secure = "https://www.games.example/levels"
    says_nothing_of_requests(gateway, AMY, secure)
    number = store(add_request, asked("amy", AMY, "Amy Jones"), datetime.now(UTC)).id  # type: ignore[attr-defined]
    block_page_says(gateway, AMY, ASKED_ON + "waiting for the e-safety officer", secure)
    store(officer_step, number, status="more_info", by="officer", note="Which <lesson>?", now=datetime.now(UTC))
    page = block_page_says(gateway, AMY, ASKED_ON + "the e-safety officer asked a question", secure)
    assert "Which &lt;lesson&gt;?" in page
    says_nothing_of_requests(gateway, BEN, secure)


def test_an_approval_lets_the_pupil_through_and_says_when_it_has_ended(gateway: Mitmdump, db_url: str) -> None:
    store = in_store(db_url)
    now = datetime.now(UTC)
    number = store(add_request, asked("amy", AMY, "Amy Jones", extent="page"), now).id  # type: ignore[attr-defined]
    store(officer_step, number, status="forwarded", by="officer", note="", now=now, recommendation="approve")
    grant = ExceptionGrant(id="new", users=["amy"], domains=["games.example"], expires=now + timedelta(seconds=4),
                           reason="Maths game", approved_by="head")  # fmt: skip
    store(approve, number, grant, by="head", note="Enjoy the lesson", now=now)
    started = time.monotonic()
    while visit(gateway, AMY)[0] != 200:
        assert time.monotonic() - started < LIVE_WITHIN, "the approval is not live"
        time.sleep(0.1)
    says_nothing_of_requests(gateway, BEN)
    # The grant ends by itself: the block page says it was approved and has ended.
    page = block_page_says(gateway, AMY, ASKED_ON + r"approved until \d{1,2} [A-Z][a-z]{2}, \d\d:\d\d; that has ended")
    assert "Enjoy the lesson" in page


def test_the_last_outcomes_read_stay_on_the_block_page_while_the_store_is_away(
        mitmdump_proxy, origin_http, pg_schema_url, tmp_path: Path) -> None:  # fmt: skip  # noqa: F811
    url = pg_schema_url[1]
    upgrade(url)
    with session_factory(make_engine(url)).begin() as s:
        import_people(s, [Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B")])
        start_session(s, client_ip=AMY, source=IdentitySource.PORTAL, username="amy", now=datetime.now(UTC))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    store, now = in_store(url), datetime.now(UTC)
    with PgStandIn((PG_HOST, PG_PORT)) as standin:
        proxy = mitmdump_proxy(["addons/gateway.py"], {
            "gateway_policy": str(policy), "gateway_db": standin.url_for(url), "gateway_spool": str(tmp_path / "spool"),
            "gateway_identity_interval_ms": 200, "gateway_grants_interval_ms": 200,
        }, origin=origin_http, ready_line="identity sources running")  # fmt: skip
        number = store(add_request, asked("amy", AMY, "Amy Jones"), now).id  # type: ignore[attr-defined]
        block_page_says(proxy, AMY, ASKED_ON + "waiting for the e-safety officer")

        mark = proxy.mark()
        standin.black_hole()
        # The officer rejects: the proxy cannot see it yet.
        store(officer_step, number, status="rejected", by="officer", note="Not for lessons", now=now)
        proxy.wait_for_output(r"the store does not answer", after=mark, timeout=30)
        started = time.monotonic()
        block_page_says(proxy, AMY, ASKED_ON + "waiting for the e-safety officer")
        assert time.monotonic() - started < 1.0, "the block page waited for the store"

        standin.forward()
        proxy.wait_for_output(r"the store answers again", after=mark, timeout=30)
        block_page_says(proxy, AMY, ASKED_ON + "not approved — Not for lessons")
