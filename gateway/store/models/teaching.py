"""Which classes each member of staff teaches, from the roster's "Teaches" column: the teacher's console view and
the curriculum-activity windows they may ask for are limited to these classes.

A class is a name at one school: a trust's schools each have a 5B, so a class teacher row names the school whose
roster said so, and only that school's pupils of that name are the class.
"""

from __future__ import annotations

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class ClassTeacher(Base):
    __tablename__ = "class_teacher"

    # The school (`person.site` of its pupils); "" for a roster imported for no school in particular.
    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Lower case, as `person.username`.
    username: Mapped[str] = mapped_column(String(128), primary_key=True)
    school_class: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_class_teacher_site_school_class", "site", "school_class"),)
