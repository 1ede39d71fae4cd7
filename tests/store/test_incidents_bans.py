"""Supervised-only bans and supervised sessions in the store, on a real SQLite file and the real PostgreSQL: what
is in force when, one ban per person, and the `bans` counter raised by every change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from gateway.store.bans import (
    BANS,
    BanInForce,
    StaleBan,
    ban_person,
    bans_in_force,
    end_supervision,
    lift_ban,
    set_ban_end,
    start_supervision,
)
from gateway.store.engine import make_engine
from gateway.store.versions import versions
from tests.store.databases import db_url, pg_schema_url  # noqa: F401 - fixtures

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def session(db_url):  # noqa: F811
    engine = make_engine(db_url)
    with Session(engine) as s:
        yield s
    engine.dispose()


def counter(session: Session) -> int:
    return versions(session, (BANS,))[BANS]


def ban(session: Session, username: str = "amy.p", **kwargs) -> int:
    made = ban_person(session, username=username, display_name="Amy P", reason="DoH to a private resolver",
                      created_by="head", now=kwargs.pop("now", T0), **kwargs)  # fmt: skip
    session.commit()
    return made.id


def test_a_ban_is_in_force_until_its_end_and_follows_the_username_in_any_spelling(session) -> None:
    ban_id = ban(session, " Amy.P ", ends_at=T0 + 14 * 24 * HOUR)
    assert counter(session) == 1
    assert bans_in_force(session, T0) == [BanInForce("amy.p", ban_id, T0 + 14 * 24 * HOUR, None)]
    assert bans_in_force(session, T0 - HOUR) == []  # not before it starts
    assert bans_in_force(session, T0 + 14 * 24 * HOUR) == []  # not from its end


def test_banning_a_banned_person_keeps_one_ban_ending_at_the_later_end(session) -> None:
    first = ban(session, ends_at=T0 + 24 * HOUR)
    assert ban(session, now=T0 + HOUR, ends_at=T0 + 2 * HOUR) == first
    assert counter(session) == 1  # nothing changed
    assert ban(session, now=T0 + HOUR) == first  # until lifted is the latest end
    assert counter(session) == 2
    assert bans_in_force(session, T0 + 1000 * 24 * HOUR) == [BanInForce("amy.p", first, None, None)]


def test_a_lifted_ban_no_longer_applies_and_cannot_be_lifted_twice(session) -> None:
    ban_id = ban(session)
    start_supervision(session, username="amy.p", teacher="mr.jones", ends_at=T0 + 2 * HOUR, note=None, now=T0 + HOUR)
    session.commit()
    lifted = lift_ban(session, ban_id, by="head", note="spoke to parents", now=T0 + 90 * timedelta(minutes=1))
    session.commit()
    assert (lifted.lifted_by, lifted.lift_note) == ("head", "spoke to parents")
    assert bans_in_force(session, T0 + 2 * HOUR) == []
    assert counter(session) == 3
    with pytest.raises(StaleBan):
        lift_ban(session, ban_id, by="head", note="again", now=T0 + 3 * HOUR)
    # The person can be banned afresh after a lift.
    again = ban(session, now=T0 + 4 * HOUR)
    assert again != ban_id and [b.ban_id for b in bans_in_force(session, T0 + 5 * HOUR)] == [again]


def test_the_headteacher_moves_the_end_of_a_ban(session) -> None:
    ban_id = ban(session, ends_at=T0 + 24 * HOUR)
    set_ban_end(session, ban_id, ends_at=T0 + 48 * HOUR, by="head", now=T0 + HOUR)
    session.commit()
    assert bans_in_force(session, T0 + 30 * HOUR)[0].ends_at == T0 + 48 * HOUR
    set_ban_end(session, ban_id, ends_at=None, by="head", now=T0 + HOUR)
    session.commit()
    assert bans_in_force(session, T0 + 3000 * HOUR)[0].ends_at is None
    with pytest.raises(ValueError, match="lift it"):
        set_ban_end(session, ban_id, ends_at=T0, by="head", now=T0 + HOUR)
    assert counter(session) == 3


def test_a_supervised_session_runs_until_its_end_or_until_the_teacher_ends_it(session) -> None:
    ban_id = ban(session)
    first = start_supervision(session, username="AMY.P", teacher="mr.jones", ends_at=T0 + 2 * HOUR,
                              note="Year 5 ICT lesson", now=T0 + HOUR)  # fmt: skip
    session.commit()
    assert bans_in_force(session, T0 + HOUR) == [BanInForce("amy.p", ban_id, None, T0 + 2 * HOUR)]
    assert bans_in_force(session, T0 + 2 * HOUR) == [BanInForce("amy.p", ban_id, None, None)]  # ran out
    second = start_supervision(session, username="amy.p", teacher="ms.khan", ends_at=T0 + 4 * HOUR, note="",
                               now=T0 + 3 * HOUR)  # fmt: skip
    session.commit()
    ended = end_supervision(session, second.id, by="ms.khan", now=T0 + 3 * HOUR + timedelta(minutes=10))
    session.commit()
    assert ended.ended_at == T0 + 3 * HOUR + timedelta(minutes=10)
    assert bans_in_force(session, T0 + 3 * HOUR + timedelta(minutes=11))[0].supervised_until is None
    with pytest.raises(StaleBan):
        end_supervision(session, first.id, by="mr.jones", now=T0 + 5 * HOUR)  # ran out already
    assert counter(session) == 4


def test_only_a_banned_person_can_be_supervised(session) -> None:
    with pytest.raises(ValueError, match="not banned"):
        start_supervision(session, username="ben.k", teacher="mr.jones", ends_at=T0 + HOUR, note=None, now=T0)
    ban(session, "ben.k", ends_at=T0 + HOUR)
    with pytest.raises(ValueError, match="not banned"):
        start_supervision(session, username="ben.k", teacher="mr.jones", ends_at=T0 + 3 * HOUR, note=None,
                          now=T0 + 2 * HOUR)  # fmt: skip
    with pytest.raises(ValueError, match="end after"):
        start_supervision(session, username="ben.k", teacher="mr.jones", ends_at=T0, note=None, now=T0)


def test_a_ban_needs_a_username_and_an_end_after_its_start(session) -> None:
    with pytest.raises(ValueError, match="username"):
        ban(session, "  ")
    with pytest.raises(ValueError, match="end after"):
        ban(session, ends_at=T0)
    assert counter(session) == 0
