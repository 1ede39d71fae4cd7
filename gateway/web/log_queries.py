"""Access-log queries behind the console and the API: filters, pages, a person's timeline, dashboard figures.

Every filter is an equality or range on a column that leads an index ending in the time, so a filtered page
"newest first" is an index range however big the table. A search from a form or the API covers the last
`DEFAULT_DAYS` days unless it names its own range or asks for all time: on PostgreSQL the log is partitioned by
day, and a query with no time bound is planned over every partition (hundreds of milliseconds on a trust's log).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from gateway.store import partitions
from gateway.store.models.access_log import AccessLogEntry as Log
from gateway.store.models.access_log import reverse_host
from gateway.store.models.rollups import AccessRollup as Rollup
from gateway.store.rollups import ATTEMPTS, hour_of, hour_start
from gateway.web import params

PAGE_SIZE = 50
ACTIONS = ("allow", "block", "flag")
SORTS = {
    "newest": (Log.at.desc(), Log.id.desc()),
    "oldest": (Log.at.asc(), Log.id.asc()),
    # Within a person or a domain, oldest first: the index order, so these stay fast unfiltered.
    "person": (Log.username.asc(), Log.at.asc(), Log.id.asc()),
    "domain": (Log.host_rev.asc(), Log.at.asc(), Log.id.asc()),
}
# A domain filter covering at most this many distinct hosts is answered host by host on SQLite (see `page`).
MAX_HOSTS_TO_MERGE = 64
# The range a search covers when it names none: today and the 29 days before, in the school's zone.
DEFAULT_DAYS = 30
TIME_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True)
class LogFilter:
    person: str = ""
    group: str = ""
    school_class: str = ""
    device: str = ""
    domain: str = ""
    list_name: str = ""
    action: str = ""
    site: str = ""
    # Local date-times as typed ("2026-03-02T09:00"); interpreted in the school's zone.
    since: str = ""
    until: str = ""
    # "1": every row whatever its time (since and until are then ignored).
    all_time: str = ""
    sort: str = "newest"
    page: int = 1
    # The sites the account may see (`gateway.web.sites`); empty: every site. Never read from a request.
    allowed_sites: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: Any, zone: tzinfo, allowed_sites: tuple[str, ...] = (),
                  now: datetime | None = None) -> LogFilter:  # fmt: skip
        """The filter a query string or form asks for, within the account's sites, over the last `DEFAULT_DAYS`
        days when it names no range; a value out of range raises `params.BadParameter`."""
        values: dict[str, Any] = {f.name: str(args.get(f.name, "")).strip()[:255] for f in fields(cls)
                                  if f.name != "allowed_sites"}  # fmt: skip
        values["allowed_sites"] = allowed_sites
        values["page"] = params.page_number(values["page"])
        values["sort"] = params.one_of(values["sort"], list(SORTS), "newest", "sort")
        values["action"] = params.one_of(values["action"], ACTIONS, "", "action")
        values["all_time"] = params.one_of(values["all_time"], ("1",), "", "all_time")
        since, until = (params.local_datetime(values[name], zone, name) for name in ("since", "until"))
        if values["all_time"]:
            values["since"] = values["until"] = ""
        elif not since and not until:
            today = (now or datetime.now(UTC)).astimezone(zone).date()
            first = datetime.combine(today - timedelta(days=DEFAULT_DAYS - 1), datetime.min.time())
            values["since"] = first.strftime(TIME_FORMAT)
        return cls(**values)

    def used(self) -> dict[str, Any]:
        """The filter as recorded in the audit trail and carried in links: only what was set."""
        return {k: v for k, v in asdict(self).items()
                if v and not (k == "sort" and v == "newest") and k not in ("page", "allowed_sites")}  # fmt: skip

    def time_range(self, zone: tzinfo) -> tuple[datetime | None, datetime | None]:
        return _local(self.since, zone), _local(self.until, zone)

    def period(self, zone: tzinfo) -> str:
        """The range searched, as the page and the export button say it."""
        since, until = (t.astimezone(zone).strftime("%d %b %Y %H:%M") if t else "" for t in self.time_range(zone))
        if since:
            return f"from {since} to {until or 'now'}"
        return f"up to {until}" if until else "all time"

    def domain_range(self) -> tuple[str, str] | None:
        """The host_rev range of the domain and every subdomain ('/' sorts just after '.')."""
        if not self.domain:
            return None
        rev = reverse_host(self.domain.strip().lstrip("*."))
        return rev, rev[:-1] + "/"

    def conditions(self, zone: tzinfo, *, with_domain: bool = True, with_time: bool = True) -> list[Any]:
        where: list[Any] = []
        for value, column in (
            (self.person.lower(), Log.username),
            (self.group, Log.group_name),
            (self.school_class, Log.school_class),
            (self.device, Log.device),
            (self.list_name, Log.list_name),
            (self.action, Log.action),
            (self.site, Log.site),
        ):
            if value:
                where.append(column == value)
        if self.allowed_sites:
            where.append(Log.site.in_(self.allowed_sites))
        bounds = self.domain_range()
        if bounds and with_domain:
            where.append(and_(Log.host_rev >= bounds[0], Log.host_rev < bounds[1]))
        if with_time:
            where += _between(*self.time_range(zone))
        return where


def _between(since: datetime | None, until: datetime | None) -> list[Any]:
    return ([Log.at >= since] if since else []) + ([Log.at < until] if until else [])


def _local(text: str, zone: tzinfo) -> datetime | None:
    return params.local_datetime(text, zone, "time")


def filtered(log_filter: LogFilter, zone: tzinfo) -> Select[tuple[Log]]:
    return select(Log).where(*log_filter.conditions(zone))


def page(session: Session, log_filter: LogFilter, zone: tzinfo, size: int = PAGE_SIZE) -> tuple[list[Log], bool]:
    """One page of rows and whether there is another; no COUNT(*) over millions of rows."""
    in_time_order = log_filter.sort in ("newest", "oldest")
    start = (log_filter.page - 1) * size
    if in_time_order and session.get_bind().dialect.name == "postgresql":
        if not start:
            rows = _by_windows(session, log_filter, zone, [Log], size + 1)
            return rows[:size], len(rows) > size
        # The rows before the page are skipped by their keys alone, then the page's own rows are read.
        keys = _by_windows(session, log_filter, zone, [Log.id, Log.at], start + size + 1)
        return _rows_of(session, log_filter, keys[start : start + size]), len(keys) > start + size
    if log_filter.domain and in_time_order:
        hosts = _hosts_in(session, log_filter)
        if hosts is not None:
            return _merged_page(session, log_filter, zone, size, hosts)
    query = filtered(log_filter, zone).order_by(*SORTS[log_filter.sort]).offset(start).limit(size + 1)
    rows = list(session.scalars(query))
    return rows[:size], len(rows) > size


def _by_windows(session: Session, log_filter: LogFilter, zone: tzinfo, columns: list[Any], wanted: int) -> list[Any]:
    """The first `wanted` rows (or their `columns`) in time order, read a few days at a time (`partitions.windows`),
    stopping once there are enough: each query is planned over its own days' partitions only. A domain needs no
    host-by-host merge here: within a day's partition its rows are few enough to sort."""
    since, until = log_filter.time_range(zone)
    first = None if since else partitions.first_day(session.connection())
    newest_first = log_filter.sort == "newest"
    found: list[Any] = []
    for low, high in partitions.windows(since, until, newest_first=newest_first, now=datetime.now(UTC), first=first):
        query = select(*columns).where(*log_filter.conditions(zone, with_time=False), *_between(low, high))
        query = query.order_by(*SORTS[log_filter.sort]).limit(wanted - len(found))
        found += session.scalars(query) if columns == [Log] else session.execute(query).all()
        if len(found) >= wanted:
            break
    return found


def _rows_of(session: Session, log_filter: LogFilter, keys: list[Any]) -> list[Log]:
    if not keys:
        return []
    # The keys' own time span bounds the query to the partitions they sit in.
    span = [Log.at >= min(k.at for k in keys), Log.at <= max(k.at for k in keys)]
    query = select(Log).where(Log.id.in_([k.id for k in keys]), *span).order_by(*SORTS[log_filter.sort])
    return list(session.scalars(query))


def _hosts_in(session: Session, log_filter: LogFilter) -> list[str] | None:
    """The distinct hosts under a domain, one index seek each; None when there are too many to merge."""
    low, high = log_filter.domain_range()  # type: ignore[misc]
    hosts: list[str] = []
    while len(hosts) <= MAX_HOSTS_TO_MERGE:
        after = [Log.host_rev > hosts[-1]] if hosts else [Log.host_rev >= low]
        # Hosts of every site: only the names are read here, and each page's rows are limited to the account's sites.
        found = session.scalar(select(func.min(Log.host_rev)).where(*after, Log.host_rev < high))
        if found is None:
            return hosts
        hosts.append(found)
    return None


def _merged_page(session: Session, log_filter: LogFilter, zone: tzinfo, size: int,
                 hosts: list[str]) -> tuple[list[Log], bool]:  # fmt: skip
    """A domain's page, newest (or oldest) first, as a merge of each host's own index range.

    A range over host_rev cannot also deliver rows in time order, so SQLite would sort every row of a busy domain;
    each single host can, through (host_rev, at).
    """
    wanted = log_filter.page * size + 1
    rows: list[Log] = []
    for host in hosts:
        query = select(Log).where(*log_filter.conditions(zone, with_domain=False), Log.host_rev == host)
        rows += session.scalars(query.order_by(*SORTS[log_filter.sort]).limit(wanted))
    rows.sort(key=lambda r: (r.at, r.id), reverse=log_filter.sort == "newest")
    start = (log_filter.page - 1) * size
    return rows[start : start + size], len(rows) > start + size


def export_query(log_filter: LogFilter, zone: tzinfo) -> Select[tuple[Log]]:
    return filtered(log_filter, zone).order_by(*SORTS[log_filter.sort])


def timeline(session: Session, username: str, day: date, zone: tzinfo, limit: int = 2000,
             allowed_sites: tuple[str, ...] = ()) -> tuple[list[Log], bool]:  # fmt: skip
    start = datetime.combine(day, datetime.min.time(), zone)
    end = start + timedelta(days=1)
    query = (
        select(Log)
        .where(Log.username == username.lower(), Log.at >= start, Log.at < end,
               *([Log.site.in_(allowed_sites)] if allowed_sites else []))  # fmt: skip
        .order_by(Log.at, Log.id)
        .limit(limit + 1)
    )
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit


# --- dashboard -------------------------------------------------------------------------------------------------


@dataclass
class Dashboard:
    since: datetime
    until: datetime
    # (local day, blocked, flagged)
    over_time: list[tuple[str, int, int]]
    top_domains: list[tuple[str, int]]
    top_categories: list[tuple[str, int]]
    by_group: list[tuple[str, int]]
    by_class: list[tuple[str, int]]
    # local hour -> {period kind -> requests}
    hours: dict[int, dict[str, int]]

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "blocked_flagged_by_day": [{"day": d, "blocked": b, "flagged": f} for d, b, f in self.over_time],
            "top_blocked_domains": [{"domain": d, "count": n} for d, n in self.top_domains],
            "top_blocked_categories": [{"category": c, "count": n} for c, n in self.top_categories],
            "attempts_by_group": [{"group": g, "count": n} for g, n in self.by_group],
            "attempts_by_class": [{"class": c, "count": n} for c, n in self.by_class],
            "requests_by_hour": [{"hour": h, "by_period": p} for h, p in sorted(self.hours.items())],
        }


def dashboard(session: Session, zone: tzinfo, *, days: int = 7, now: datetime | None = None, site: str = "",
              allowed_sites: tuple[str, ...] = ()) -> Dashboard:  # fmt: skip
    """The dashboard's figures for the last `days` local days, from the hourly counts alone (never the log), of
    one site or every site the account may see."""
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).date()
    since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), zone)
    until = datetime.combine(today + timedelta(days=1), datetime.min.time(), zone)
    # Local midnights are whole UTC hours wherever the offset is whole hours (the UK's is).
    hours_in = [Rollup.hour >= hour_of(since), Rollup.hour < hour_of(until)] + ([Rollup.site == site] if site else [])
    if allowed_sites:
        hours_in.append(Rollup.site.in_(allowed_sites))

    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    hours: dict[int, dict[str, int]] = {h: {} for h in range(24)}
    local_hours: dict[int, datetime] = {}
    total = func.sum(Rollup.n)
    for hour, action, period, count in session.execute(
        select(Rollup.hour, Rollup.action, Rollup.key, total)
        .where(Rollup.dimension == "period", Rollup.action.in_(ACTIONS), *hours_in)
        .group_by(Rollup.hour, Rollup.action, Rollup.key)
    ):
        local = local_hours.get(hour) or local_hours.setdefault(hour, hour_start(hour).astimezone(zone))
        if action != "allow":
            per_day[local.date().isoformat()][action] += count
        slot = hours[local.hour]
        slot[period] = slot.get(period, 0) + count
    days_list = [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    over_time = [(d, per_day[d]["block"], per_day[d]["flag"]) for d in days_list]

    def top(dimension: str, actions: tuple[str, ...], limit: int = 10) -> list[tuple[str, int]]:
        count = func.sum(Rollup.n).label("n")
        query = (
            select(Rollup.key, count)
            .where(Rollup.dimension == dimension, Rollup.action.in_(actions), *hours_in, Rollup.key != "")
            .group_by(Rollup.key)
        )
        return [(key, int(n)) for key, n in session.execute(query.order_by(count.desc(), Rollup.key).limit(limit))]

    return Dashboard(
        since=since,
        until=until,
        over_time=over_time,
        top_domains=top("host", ("block",)),
        top_categories=top("list", ("block",)),
        by_group=top("group", ATTEMPTS),
        by_class=top("class", ATTEMPTS),
        hours={h: {k: int(v) for k, v in slot.items()} for h, slot in hours.items()},
    )
