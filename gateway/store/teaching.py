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


def replace_teaching(session: Session, people: Iterable[Person]) -> None:
    """Make the store's class teachers exactly those the import names (a roster import is the whole roster)."""
    session.execute(delete(ClassTeacher))
    session.add_all(
        ClassTeacher(username=person.username, school_class=name)
        for person in people for name in sorted(person.teaches)
    )  # fmt: skip
