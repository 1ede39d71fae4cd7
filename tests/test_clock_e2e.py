"""The gateway's clock follows `gateway_clock_file` at run time, through a real mitmdump and real curl: a new
instant in the file decides the next requests (lesson or lunch, a grant's end), the block page and the access log
show it, garbage in the file keeps the last good instant (logged once), and a missing file falls back to
`gateway_now`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.policy.model import ExceptionGrant
from gateway.store.engine import make_engine, session_factory
from gateway.store.grants import add_grant
from gateway.store.models.access_log import AccessLogEntry
from tests.support.clients import curl
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.policies import school_days_policy

pytestmark = pytest.mark.e2e

PUPIL = "127.0.0.2"
# The clock file is re-read every 0.2 s; a request a second later sees the new instant.
FOLLOWS_WITHIN = 2.0
LIVE_WITHIN = 5.0
MONDAY_LESSON, MONDAY_LUNCH = "2026-09-07T10:00", "2026-09-07T12:30"

POLICY = school_days_policy("""\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, guest: {}}
default_group: guest
networks:
  - {name: pupils, subnets: [127.0.0.2/32], group: pupil}
""", """\
lists:
  games: {domains: [games.example]}
  chat: {domains: [chat.example]}
rules:
  - {id: no-games-in-lessons, periods: [lesson], lists: [games], action: block, reason: No games in lessons}
  - {id: no-chat, lists: [chat], action: block, reason: No chat}
""")


def status(proxy: Mitmdump, url: str) -> int:
    return curl(url, proxy=proxy.proxy_url, source_address=PUPIL).status


def eventually(proxy: Mitmdump, url: str, wanted: int, within: float = FOLLOWS_WITHIN) -> None:
    started = time.monotonic()
    while (got := status(proxy, url)) != wanted:
        assert time.monotonic() - started < within, f"{url}: still {got} after {within}s"
        time.sleep(0.1)


def set_clock(path: Path, text: str) -> None:
    """Replace the file whole, as an officer's `echo ... > file` or an editor's save would."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


@pytest.fixture
def clock_file(tmp_path: Path) -> Path:
    return tmp_path / "gateway-clock"


@pytest.fixture
def gateway(tmp_path: Path, origin, clock_file: Path):  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    set_clock(clock_file, MONDAY_LESSON + "\n")
    proxy = start_gateway(tmp_path, policy, at=MONDAY_LUNCH, origin=origin, gateway_clock_file=str(clock_file),
                          gateway_grants_interval_ms=200)  # fmt: skip
    yield proxy
    proxy.stop()


def logged_moments(s) -> set[datetime]:  # type: ignore[no-untyped-def]
    """The instants the games.example rows were logged at, in UTC."""
    at = s.scalars(select(AccessLogEntry.at).where(AccessLogEntry.host == "games.example"))
    return {(r if r.tzinfo else r.replace(tzinfo=UTC)).astimezone(UTC) for r in at}


def test_the_next_decision_uses_the_instant_written_to_the_file(gateway, clock_file: Path, tmp_path: Path) -> None:
    # Read at start-up: the very first request is decided at the file's instant, not gateway_now's lunch.
    page = curl("http://games.example/", proxy=gateway.proxy_url, source_address=PUPIL,
                headers={"Accept": "text/html"})  # fmt: skip
    assert page.status == 403 and "No games in lessons" in page.text
    assert "Monday 07 September 2026, 10:00" in page.text and "lesson time" in page.text

    set_clock(clock_file, MONDAY_LUNCH)
    eventually(gateway, "http://games.example/", 200)
    set_clock(clock_file, "2026-09-07T13:05+01:00")  # an offset is honoured: 13:05 in London, a lesson
    eventually(gateway, "http://games.example/", 403)

    # The access log records each decision at the gateway's instant, as the dashboard will show it.
    # (On a loaded machine the clock's change takes a few polls to show, so the lesson-time rows come first, many.)
    lunch = datetime(2026, 9, 7, 11, 30, tzinfo=UTC)
    with session_factory(make_engine(f"sqlite:///{tmp_path / 'gateway.db'}"))() as s:
        deadline = time.monotonic() + LIVE_WITHIN
        while lunch not in (moments := logged_moments(s)):
            assert time.monotonic() < deadline, f"no row at lunch yet: {sorted(moments)}"
            time.sleep(0.2)
            s.expire_all()
    assert moments <= {datetime(2026, 9, 7, 9, 0, tzinfo=UTC), lunch, datetime(2026, 9, 7, 12, 5, tzinfo=UTC)}


def test_garbage_keeps_the_last_good_instant_and_is_logged_once(gateway, clock_file: Path) -> None:
    set_clock(clock_file, MONDAY_LUNCH)
    eventually(gateway, "http://games.example/", 200)
    mark = gateway.mark()
    set_clock(clock_file, "half past ten on Tuesday")
    gateway.wait_for_output(r"clock: .*not an ISO 8601 instant: 'half past ten on Tuesday'; the clock stays at "
                            r"2026-09-07T12:30", after=mark)  # fmt: skip
    set_clock(clock_file, "half past ten on Tuesday")  # written again: the same garbage, no second warning
    time.sleep(1.0)
    assert status(gateway, "http://games.example/") == 200
    assert gateway.output()[mark:].count("not an ISO 8601 instant") == 1
    for bad in ("0001-01-01T00:00", "99999-01-01T10:00", "\x00\xff" * 200):
        set_clock(clock_file, bad)
        time.sleep(0.5)
        assert status(gateway, "http://games.example/") == 200

    # Fixed: followed again at once.
    set_clock(clock_file, MONDAY_LESSON)
    eventually(gateway, "http://games.example/", 403)
    # Removed: back to gateway_now (lunch), then a new file is followed again.
    clock_file.unlink()
    eventually(gateway, "http://games.example/", 200)
    set_clock(clock_file, MONDAY_LESSON)
    eventually(gateway, "http://games.example/", 403)


def test_a_grant_ends_at_the_moved_clock_with_no_restart(tmp_path: Path, origin, clock_file: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proxy = start_gateway(tmp_path, policy, at="", origin=origin, gateway_clock_file=str(clock_file),
                          gateway_grants_interval_ms=200)  # fmt: skip
    try:
        # No file: the real clock.
        assert status(proxy, "http://chat.example/") == 403
        expires = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
        with session_factory(make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")).begin() as s:
            add_grant(s, ExceptionGrant(id="new", lists=["chat"], expires=expires, reason="test"), created_by="t")
        eventually(proxy, "http://chat.example/", 200, LIVE_WITHIN)

        set_clock(clock_file, (expires - timedelta(minutes=1)).isoformat())
        time.sleep(1.0)
        assert status(proxy, "http://chat.example/") == 200
        set_clock(clock_file, expires.isoformat())
        eventually(proxy, "http://chat.example/", 403)
        # Back inside the grant's own hours, it applies again: the clock chooses the instant, the grant its rules.
        set_clock(clock_file, (expires - timedelta(minutes=30)).isoformat())
        eventually(proxy, "http://chat.example/", 200)
        clock_file.unlink()
        time.sleep(0.5)
        assert status(proxy, "http://chat.example/") == 200
    finally:
        proxy.stop()


def test_a_clock_moved_back_never_brings_back_a_grant_that_has_ended(tmp_path: Path, origin, clock_file: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proxy = start_gateway(tmp_path, policy, at="", origin=origin, gateway_clock_file=str(clock_file),
                          gateway_grants_interval_ms=200)  # fmt: skip
    try:
        expires = datetime.now(UTC) + timedelta(seconds=4)
        with session_factory(make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")).begin() as s:
            add_grant(s, ExceptionGrant(id="new", lists=["chat"], expires=expires, reason="test"), created_by="t")
        eventually(proxy, "http://chat.example/", 200, LIVE_WITHIN)
        eventually(proxy, "http://chat.example/", 403, LIVE_WITHIN + 4)
        # A rehearsal winds the clock back to an hour before the grant ended; nothing in the store has moved.
        set_clock(clock_file, (expires - timedelta(hours=1)).isoformat())
        time.sleep(1.0)
        assert status(proxy, "http://chat.example/") == 403
    finally:
        proxy.stop()
