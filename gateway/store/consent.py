"""The image-consent register: whether each pupil's images and videos may be posted on the school's accounts, per
academic year, kept as a history.

"The school will obtain consent ... at the beginning of each academic year ... The consent will be valid for the
entire academic year." A record counts from its date to the end of its academic year (31 August, in the school's
time zone) and never after: on 1 September a pupil with no record for the new year has no consent. Recording,
amending and withdrawing each add a row with the day and the written source; nothing is overwritten. The caller
commits; every change is audited in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.audit import record
from gateway.store.models.consent import ConsentRecord
from gateway.store.models.people import PersonRecord
from gateway.store.sites import within

CHANNELS = ("website", "social_media", "newsletter")
CHANNEL_TITLES = {"website": "school website", "social_media": "school social media", "newsletter": "newsletter"}
CHANGES = ("recorded", "amended", "withdrawn")
MAX_SOURCE = 500
_PUPILS = (PersonRecord.active, PersonRecord.roles == "", PersonRecord.year_group.is_not(None))


class ConsentRefused(ValueError):
    """A change the register cannot take, with why in words the DPO can act on."""


def academic_year(day: date) -> int:
    """The year the academic year holding `day` starts in: 1 September to 31 August."""
    return day.year if day.month >= 9 else day.year - 1


def school_day(now: datetime, zone: tzinfo) -> date:
    """The school's local date at `now`: at 23:30 UTC on 31 August, London is already in 1 September."""
    return now.astimezone(zone).date()


def year_label(year: int) -> str:
    return f"{year}/{(year + 1) % 100:02d}"


@dataclass(frozen=True, slots=True)
class PupilConsent:
    """One pupil's standing on a day: the record in force, or none (no consent)."""

    username: str
    display_name: str
    school_class: str | None
    year_group: int | None
    current: ConsentRecord | None

    @property
    def images(self) -> bool:
        return self.current is not None and self.current.images

    @property
    def video(self) -> bool:
        return self.current is not None and self.current.video

    @property
    def channels(self) -> list[str]:
        return self.current.channels.split() if self.current is not None else []

    def summary(self) -> str:
        if self.current is None:
            return "no consent"
        if not (self.images or self.video):
            return "withdrawn" if self.current.change == "withdrawn" else "no consent"
        what = " and ".join(w for w, given in (("images", self.images), ("video", self.video)) if given)
        return f"{what}: {', '.join(CHANNEL_TITLES[c] for c in CHANNELS if c in self.channels)}"


def _pupil(session: Session, username: str, allowed_sites: tuple[str, ...] = ()) -> PersonRecord:
    person = session.scalar(select(PersonRecord).where(PersonRecord.username == username.strip().lower(),
                                                       *within(PersonRecord.site, allowed_sites)))  # fmt: skip
    if person is None or not person.active:
        raise ConsentRefused(f"{username!r} is not a pupil on the roster")
    # Staff are people with a staff role or no year group (as `gateway.store.permissions.is_staff` has it).
    if person.roles or person.year_group is None:
        raise ConsentRefused(f"{username!r} is a member of staff: the register is for pupils")
    return person


def record_consent(session: Session, *, username: str, change: str, images: bool, video: bool,
                   channels: list[str], effective_on: date, source: str, by: str, now: datetime,
                   today: date, allowed_sites: tuple[str, ...] = ()) -> ConsentRecord:  # fmt: skip
    """Add one change to a pupil's consent for the academic year `effective_on` falls in; `today` is the school's
    local date. ConsentRefused when it cannot be taken (a pupil of a site not in `allowed_sites` is no pupil)."""
    person = _pupil(session, username, allowed_sites)
    if change not in CHANGES:
        raise ConsentRefused(f"the change is one of {', '.join(CHANGES)}, not {change!r}")
    source = source.strip()
    if not source:
        raise ConsentRefused("give the written source (e.g. 'signed form 2026-09-04', 'email from parent')")
    if len(source) > MAX_SOURCE:
        raise ConsentRefused(f"the source is longer than {MAX_SOURCE} characters")
    if effective_on > today:
        raise ConsentRefused(f"the date {effective_on.isoformat()} is in the future")
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise ConsentRefused(f"unknown channel(s) {', '.join(unknown)}: the channels are {', '.join(CHANNELS)}")
    year = academic_year(effective_on)
    earlier = session.scalar(select(ConsentRecord.id).where(ConsentRecord.username == person.username,
                                                            ConsentRecord.academic_year == year).limit(1))  # fmt: skip
    if change != "recorded" and earlier is None:
        raise ConsentRefused(f"nothing is recorded for {person.username} in {year_label(year)} to {change[:-1]}")
    if change == "withdrawn":
        images = video = False
        channels = []
    elif (images or video) and not channels:
        raise ConsentRefused("name the channels the consent covers (website, social media, newsletter)")
    elif not (images or video):
        channels = []
    row = ConsentRecord(site=person.site, username=person.username, academic_year=year, change=change, images=images, video=video,
                        channels=" ".join(sorted(set(channels))), effective_on=effective_on, source=source,
                        recorded_by=by, recorded_at=now)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def audit_change(session: Session, row: ConsentRecord, *, by: str, role: str | None,
                 client_ip: str | None) -> None:  # fmt: skip
    """The change in the audit trail, in the caller's transaction."""
    record(session, by, f"consent_{row.change}", target=f"consent-{row.username}", role=role, client_ip=client_ip,
           detail={"record": row.id, "academic_year": year_label(row.academic_year), "images": row.images,
                   "video": row.video, "channels": row.channels, "effective_on": row.effective_on.isoformat(),
                   "source": row.source})  # fmt: skip


def in_force(session: Session, day: date) -> dict[str, ConsentRecord]:
    """Each pupil's record in force on `day`: the latest (by its date, then as entered) of `day`'s academic year
    dated on or before it."""
    rows = session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.academic_year == academic_year(day), ConsentRecord.effective_on <= day)
        .order_by(ConsentRecord.effective_on, ConsentRecord.id)
    )
    return {row.username: row for row in rows}


def register(session: Session, day: date, school_class: str | None = None,
             allowed_sites: tuple[str, ...] = ()) -> list[PupilConsent]:  # fmt: skip
    """Every pupil on the roster (by class, then name) with the consent in force on `day`, of the given sites
    (every site for none)."""
    query = select(PersonRecord).where(*_PUPILS, *within(PersonRecord.site, allowed_sites))
    if school_class:
        query = query.where(PersonRecord.school_class == school_class)
    pupils = sorted(session.scalars(query), key=lambda p: (p.school_class or "", p.display_name.lower()))
    current = in_force(session, day)
    return [PupilConsent(p.username, p.display_name, p.school_class, p.year_group, current.get(p.username))
            for p in pupils]  # fmt: skip


def pupil(session: Session, username: str, day: date, allowed_sites: tuple[str, ...] = ()) -> PupilConsent:
    person = _pupil(session, username, allowed_sites)
    return PupilConsent(person.username, person.display_name, person.school_class, person.year_group,
                        in_force(session, day).get(person.username))  # fmt: skip


def history(session: Session, username: str) -> list[ConsentRecord]:
    """Every change for the pupil, newest first."""
    return list(session.scalars(select(ConsentRecord).where(ConsentRecord.username == username)
                                .order_by(ConsentRecord.academic_year.desc(), ConsentRecord.effective_on.desc(),
                                          ConsentRecord.id.desc())))  # fmt: skip


def classes(session: Session, allowed_sites: tuple[str, ...] = ()) -> list[str]:
    found = session.scalars(select(PersonRecord.school_class).where(*_PUPILS, *within(PersonRecord.site, allowed_sites))
                            .distinct())  # fmt: skip
    return sorted(c for c in found if c)
