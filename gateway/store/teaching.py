"""Which classes a member of staff teaches, as the last roster import said."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.identity.people import Person
from gateway.store.models.people import PersonRecord
from gateway.store.models.teaching import ClassTeacher


def classes_taught(session: Session, username: str) -> list[str]:
    """The classes `username` teaches, sorted; none for someone who has left or teaches nothing."""
    return list(session.scalars(
        select(ClassTeacher.school_class)
        .join(PersonRecord, PersonRecord.username == ClassTeacher.username)
        .where(ClassTeacher.username == username.lower(), PersonRecord.active)
        .order_by(ClassTeacher.school_class)
    ))  # fmt: skip


def replace_teaching(session: Session, people: Iterable[Person], of: set[str] | None = None) -> None:
    """Make the store's class teachers exactly those the import names (a roster import is the whole roster); with
    `of`, replace only those people's (one school's in a trust's store) and the imported people's."""
    people = list(people)
    if of is None:
        session.execute(delete(ClassTeacher))
    else:
        mine = of | {person.username for person in people}
        session.execute(delete(ClassTeacher).where(ClassTeacher.username.in_(mine)))
    session.add_all(
        ClassTeacher(username=person.username, school_class=name)
        for person in people for name in sorted(person.teaches)
    )  # fmt: skip
