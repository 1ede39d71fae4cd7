"""Which classes a member of staff teaches, as the last roster import of each school said. A class is its school
and its name: a teacher at one school of a trust never teaches another school's class of the same name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, delete, false, func, or_, select
from sqlalchemy.orm import Session

from gateway.identity.people import Person
from gateway.store.models.people import PersonRecord
from gateway.store.models.teaching import ClassTeacher
from gateway.store.sites import within


class Taught(NamedTuple):
    """A class: the school ("" for a roster of no school in particular) and the roster's name for it."""

    site: str
    name: str


def classes_taught(session: Session, username: str, sites: tuple[str, ...] = ()) -> list[Taught]:
    """The classes `username` teaches at `sites` (every site for none), sorted; none for someone who has left or
    teaches nothing."""
    return [Taught(site, name) for site, name in session.execute(
        select(ClassTeacher.site, ClassTeacher.school_class)
        .join(PersonRecord, PersonRecord.username == ClassTeacher.username)
        .where(ClassTeacher.username == username.lower(), PersonRecord.active, *within(ClassTeacher.site, sites))
        .order_by(ClassTeacher.school_class, ClassTeacher.site)
    )]  # fmt: skip


def in_classes(classes: Sequence[Taught]) -> ColumnElement[bool]:
    """The condition on `person` for the pupils' rows of `classes`: each class's name at its own school."""
    site = func.coalesce(PersonRecord.site, "")
    return or_(false(), *(and_(site == c.site, PersonRecord.school_class == c.name) for c in classes))


def replace_teaching(session: Session, people: Iterable[Person], site: str | None = None, *,
                     only_site: bool = False) -> None:  # fmt: skip
    """Make the store's class teachers exactly those the import names, all at `site` (a roster import is the
    whole roster); with `only_site`, replace only that school's (one school's roster in a trust's store)."""
    people = list(people)
    at = site or ""
    session.execute(delete(ClassTeacher).where(ClassTeacher.site == at) if only_site else delete(ClassTeacher))
    session.add_all(
        ClassTeacher(site=at, username=person.username, school_class=name)
        for person in people for name in sorted(person.teaches)
    )  # fmt: skip
