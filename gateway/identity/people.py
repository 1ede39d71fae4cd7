"""People and devices as the resolver sees them: plain values, detached from the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date


class StaffRole(enum.StrEnum):
    E_SAFETY_OFFICER = "officer"
    HEADTEACHER = "headteacher"
    DPO = "dpo"
    TEACHER = "teacher"
    IT = "it"


@dataclass(frozen=True, slots=True)
class Person:
    username: str
    display_name: str
    group: str
    year_group: int | None = None
    school_class: str | None = None
    date_of_birth: date | None = None
    email: str | None = None
    roles: frozenset[StaffRole] = field(default_factory=frozenset)
    active: bool = True
    # For staff: the classes they teach (the roster's "Teaches" column), which the teacher's console view and
    # curriculum-activity windows are limited to.
    teaches: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    mac: str | None
    kind: str = ""
    # A personal (BYOD) device belongs to `username`; a school device is assigned to at most one of a person,
    # a class or a shared trolley.
    personal: bool = False
    username: str | None = None
    school_class: str | None = None
    trolley: str | None = None
    # Overrides the group the assignment would give (a staff laptop on a trolley, say).
    group: str | None = None
    active: bool = True
    # School-owned and approved by the headteacher for taking and posting pupils' pictures.
    approved: bool = False
