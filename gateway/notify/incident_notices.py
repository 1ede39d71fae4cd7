"""Circumvention notices: the headteacher and the e-safety officer are e-mailed within seconds of an incident, once
per person and technique per window, and told what followed in ONE summary at the window's end.

The access-log writer marks a new incident `notice_state = "due"`. A pass here works on groups (the incidents of one
person and technique): a group with no notice in the last `window` gets one notice naming its waiting incidents,
which opens the window; while it is open, later incidents and further attempts wait; when it ends, whatever came in
it is counted (per person and technique) in one summary e-mail for every group whose window ended, so a pupil who
tries a thousand times in an hour makes two e-mails. An attempt after a window has ended opens a new one.

Claims run like the report alerts' (gateway.notify.alerts): each group's claim is one transaction that first raises
the `incident_notices` counter, so two console processes take turns and a notice goes once. A claimed notice is
"sending" until the mail server takes it, then "sent"; one that cannot be sent is "failed" (shown on the console,
with its attempts) and is claimed again on the next pass, as is one left "sending" by a notifier that died, so
nothing is lost while the mail server is down (at worst a notice goes twice). A summary that cannot be sent puts its
incidents back as they were, to be summarised on the next pass.

Mails name the person, class, technique in plain words, time, evidence and the console link; never a full address
(which may carry a token) nor a tunnel's first bytes (which may carry a password): those are on the console.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from gateway.circumvention.incident import Technique
from gateway.notify.mail import Mailer
from gateway.store.audit import record
from gateway.store.incidents import TECHNIQUE_NAMES
from gateway.store.models.circumvention import Incident
from gateway.store.versions import bump

# The counter every claim raises first: its row lock (PostgreSQL) or the write lock (SQLite) puts claims in turn.
CLAIMS = "incident_notices"
NOTIFIER = "gateway:notifier"
# Incidents looked at in one pass; the rest wait a few seconds for the next.
BATCH = 200
# A claim older than this that never became "sent" or "failed" belongs to a notifier that died mid-send.
STALE_CLAIM = timedelta(minutes=5)
# A user agent longer than this is cut in a mail (the console shows it whole).
MAX_AGENT = 160

CONFIDENCE_WORDS = {"high": "high", "medium": "medium", "low": "low (may be a false positive)"}


@dataclass(frozen=True, slots=True)
class NoticeSettings:
    # The headteacher's and officer's addresses; empty: no notice is sent and incidents wait, "due", on the console.
    recipients: tuple[str, ...]
    window: timedelta


def notice_settings(policy: Any) -> NoticeSettings:
    """From a loaded policy: `circumvention.notices`, falling back to `reports.alerts.recipients`."""
    notices = policy.circumvention.notices
    recipients = tuple(notices.recipients) or tuple(policy.reports.alerts.recipients)
    return NoticeSettings(recipients, timedelta(minutes=notices.window_minutes))


@dataclass(frozen=True, slots=True)
class NoticePass:
    sent: int = 0
    summarised: int = 0
    failed: int = 0
    # Why the last send failed, for the log.
    error: str | None = None


@dataclass(slots=True)
class _Claim:
    """One group's share of a pass: incidents to notify now, and incidents of an ended window to summarise."""

    notify: list[Incident] = field(default_factory=list)
    summarise: list[Incident] = field(default_factory=list)
    # Each summarised incident's state and time before the claim, to put back if the summary cannot be sent.
    before: dict[int, tuple[str, datetime | None]] = field(default_factory=dict)


def technique_words(technique: str) -> str:
    try:
        return TECHNIQUE_NAMES[Technique(technique)]
    except ValueError:
        return technique.replace("_", " ")


def person_of(incident: Incident) -> str:
    if incident.display_name and incident.username:
        return f"{incident.display_name} ({incident.username})"
    return incident.display_name or incident.username or (
        f"someone not signed in, on {incident.device or incident.client_ip or 'an unknown device'}")


def incident_link(console_url: str, incident_id: int) -> str:
    return f"{console_url.rstrip('/')}/incidents/{incident_id}"


def _when(at: datetime, zone: ZoneInfo) -> str:
    return f"{at.astimezone(zone):%A %d %B %Y, %H:%M}"


def notice_message(incidents: Sequence[Incident], console_url: str, zone: ZoneInfo, window: timedelta
                   ) -> tuple[str, str]:  # fmt: skip
    """Subject and body of the notice for one person and technique (one or more incidents, oldest first)."""
    first, newest = incidents[0], max(incidents, key=lambda i: i.last_seen_at)
    attempts = sum(i.hits for i in incidents)
    who = person_of(first)
    subject = f"Circumvention attempt: {technique_words(first.technique)} — {who}"
    lines = [
        "The school web gateway blocked an attempt to get around the filter.",
        "",
        f"Who:        {who}",
        f"Class:      {first.school_class or '-'}   Year: {first.year_group if first.year_group is not None else '-'}"
        f"   Group: {first.group_name or '-'}",
        f"Device:     {first.device or '-'} ({first.client_ip or 'address unknown'})",
        f"Technique:  {technique_words(first.technique)}",
        f"When:       {_when(first.created_at, zone)}"
        + (f", last tried {_when(newest.last_seen_at, zone)}" if newest.last_seen_at != first.created_at else ""),
        f"Attempts:   {attempts}",
        f"Evidence:   detector {newest.detector}, "
        f"confidence {CONFIDENCE_WORDS.get(newest.confidence, newest.confidence)}",
    ]
    if newest.host:
        lines.append(f"Site:       {newest.host}")
    if newest.sni and newest.sni != newest.host:
        lines.append(f"TLS name:   {newest.sni}")
    if newest.user_agent:
        agent = newest.user_agent if len(newest.user_agent) <= MAX_AGENT else newest.user_agent[:MAX_AGENT] + "…"
        lines.append(f"Browser:    {agent}")
    lines += ["", "Open the incident (the full evidence, their recent activity, confirm or dismiss):"]
    lines += [f"  {incident_link(console_url, i.id)}" for i in incidents]
    minutes = int(window.total_seconds() // 60)
    lines += ["", f"Further attempts of this kind by this person in the next {minutes} minutes are not mailed one by "
              "one: a summary follows at the end of that time."]  # fmt: skip
    return subject, "\n".join(lines)


def summary_message(groups: Sequence[Sequence[Incident]], console_url: str, zone: ZoneInfo) -> tuple[str, str]:
    """Subject and body of the one summary of every window that ended: attempts counted per person and technique."""
    attempts = sum(i.hits for group in groups for i in group)
    subject = f"Circumvention summary: {len(groups)} person and technique{'s' if len(groups) != 1 else ''}, " \
              f"{attempts} attempt{'s' if attempts != 1 else ''}"
    lines = ["Attempts to get around the filter after the notices already sent, counted per person and technique.", ""]
    for group in groups:
        first = group[0]
        last = max(i.last_seen_at for i in group)
        count = sum(i.hits for i in group)
        lines += [
            f"- {person_of(first)}, class {first.school_class or '-'}: {technique_words(first.technique)}",
            f"  {count} attempt{'s' if count != 1 else ''} in all on {len(group)} incident"
            f"{'s' if len(group) != 1 else ''}, the last {_when(last, zone)}",
        ]
        lines += [f"  {incident_link(console_url, i.id)}" for i in group]
    lines += ["", f"All incidents: {console_url.rstrip('/')}/incidents/"]
    return subject, "\n".join(lines)


def _sibling_window_open(now: datetime, window: timedelta):  # type: ignore[no-untyped-def]
    """True for an incident of a person and technique whose notice went (or is going) within the window."""
    other = aliased(Incident)
    return (
        select(other.id).where(other.person_key == Incident.person_key, other.technique == Incident.technique,
                               _opens_window(other, now, window)).exists()
    )  # fmt: skip


def _opens_window(row, now: datetime, window: timedelta):  # type: ignore[no-untyped-def]
    return or_(and_(row.notice_state == "sent", row.notice_sent_at > now - window),
               and_(row.notice_state == "sending", row.notice_sent_at > now - min(window, STALE_CLAIM)))  # fmt: skip


def _waiting(now: datetime, window: timedelta):  # type: ignore[no-untyped-def]
    """Incidents with something to tell: new or unsent, or further attempts after their notice or summary."""
    return or_(
        Incident.notice_state.in_(("due", "failed")),
        and_(Incident.notice_state == "sending", Incident.notice_sent_at <= now - STALE_CLAIM),
        and_(Incident.notice_state == "sent", Incident.notice_sent_at <= now - window,
             Incident.last_seen_at > Incident.notice_sent_at),
        and_(Incident.notice_state == "summarised", Incident.last_seen_at > Incident.notice_sent_at),
    )  # fmt: skip


def _group(incident: Incident):  # type: ignore[no-untyped-def]
    # Nobody known at all: each such incident stands alone.
    if incident.person_key is None:
        return Incident.id == incident.id
    return and_(Incident.person_key == incident.person_key, Incident.technique == incident.technique)


def _claim(store: Session, incident_id: int, now: datetime, window: timedelta) -> _Claim | None:
    """The group's incidents, now ours to notify or summarise; None when another notifier took them or the group's
    window is still open."""
    bump(store, CLAIMS)
    anchor = store.get(Incident, incident_id, populate_existing=True)
    if anchor is None:
        return None
    group = _group(anchor)
    waiting = list(store.scalars(select(Incident).where(group, _waiting(now, window)).order_by(Incident.id)
                                 .execution_options(populate_existing=True)))  # fmt: skip
    opened = store.scalar(select(func.max(Incident.notice_sent_at)).where(
        group, or_(Incident.notice_state == "sent",
                   and_(Incident.notice_state == "sending", Incident.notice_sent_at > now - STALE_CLAIM)))
    )  # fmt: skip
    if not waiting or (opened is not None and opened > now - window):
        return None
    claim = _Claim()
    end = opened + window if opened is not None else None
    for incident in waiting:
        # What happened before the last window ended belongs in its summary; anything after opens a new window.
        at = incident.created_at if incident.notice_state in ("due", "failed", "sending") else incident.last_seen_at
        if end is not None and at < end and incident.notice_state != "sending":
            claim.before[incident.id] = (incident.notice_state, incident.notice_sent_at)
            incident.notice_state, incident.notice_sent_at = "summarised", now
            claim.summarise.append(incident)
        else:
            incident.notice_state, incident.notice_sent_at = "sending", now
            incident.notice_attempts += 1
            claim.notify.append(incident)
    return claim


def send_incident_notices(sessions: Callable[[], Session], mailer: Mailer, settings: NoticeSettings, console_url: str,
                          zone: ZoneInfo, now: datetime, actor: str = NOTIFIER) -> NoticePass:  # fmt: skip
    """One pass: a notice per person and technique with new incidents, then one summary of the windows that ended.
    Stops notifying at the first mail that fails (the server is down: the rest wait for the next pass)."""
    if not settings.recipients:
        return NoticePass()
    to = ", ".join(settings.recipients)
    with sessions() as store:
        candidates = list(store.scalars(
            select(Incident.id).where(_waiting(now, settings.window), ~_sibling_window_open(now, settings.window))
            .order_by(Incident.id).limit(BATCH)))  # fmt: skip
    done: set[int] = set()
    summaries: list[_Claim] = []
    sent = 0
    for incident_id in candidates:
        if incident_id in done:
            continue
        with sessions() as store, store.begin():
            claim = _claim(store, incident_id, now, settings.window)
            if claim is None:
                continue
            done.update(i.id for i in claim.notify + claim.summarise)
            if claim.summarise:
                summaries.append(claim)
            message = notice_message(claim.notify, console_url, zone, settings.window) if claim.notify else None
            # Kept, detached, for the mails and for putting a summary back: committing would expire them.
            store.flush()
            store.expunge_all()
        if message is None:
            continue
        ids = [i.id for i in claim.notify]
        try:
            mailer.send(to, *message)
        except (OSError, smtplib.SMTPException) as exc:
            with sessions() as store, store.begin():
                store.execute(update(Incident).where(Incident.id.in_(ids), Incident.notice_state == "sending")
                              .values(notice_state="failed", notice_sent_at=None))  # fmt: skip
            _put_back(sessions, summaries)
            return NoticePass(sent, 0, 1, f"{type(exc).__name__}: {exc}")
        with sessions() as store, store.begin():
            store.execute(update(Incident).where(Incident.id.in_(ids), Incident.notice_state == "sending")
                          .values(notice_state="sent"))  # fmt: skip
            for number in ids:
                record(store, actor, "incident_notice_sent", target=f"incident:{number}",
                       detail={"to": list(settings.recipients), "subject": message[0]})  # fmt: skip
        sent += 1
    return _summarise(sessions, mailer, settings, summaries, console_url, zone, actor, sent)


def _summarise(sessions: Callable[[], Session], mailer: Mailer, settings: NoticeSettings, summaries: list[_Claim],
               console_url: str, zone: ZoneInfo, actor: str, sent: int) -> NoticePass:  # fmt: skip
    if not summaries:
        return NoticePass(sent)
    subject, body = summary_message([c.summarise for c in summaries], console_url, zone)
    try:
        mailer.send(", ".join(settings.recipients), subject, body)
    except (OSError, smtplib.SMTPException) as exc:
        _put_back(sessions, summaries)
        return NoticePass(sent, 0, 1, f"{type(exc).__name__}: {exc}")
    ids = [i.id for c in summaries for i in c.summarise]
    with sessions() as store, store.begin():
        record(store, actor, "incident_summary_sent", target="incidents",
               detail={"to": list(settings.recipients), "subject": subject, "incidents": ids})  # fmt: skip
    return NoticePass(sent, len(summaries))


def _put_back(sessions: Callable[[], Session], summaries: list[_Claim]) -> None:
    """A summary that did not go: its incidents wait as they were, for the next pass."""
    with sessions() as store, store.begin():
        for claim in summaries:
            for incident in claim.summarise:
                state, at = claim.before[incident.id]
                store.execute(update(Incident).where(Incident.id == incident.id,
                                                     Incident.notice_state == "summarised",
                                                     Incident.notice_sent_at == incident.notice_sent_at)
                              .values(notice_state=state, notice_sent_at=at))  # fmt: skip
    summaries.clear()
