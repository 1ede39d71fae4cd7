"""The access log as the impact preview replays it: the last days' requests, grouped by the database into their
distinct (host, person, group, year group, class, period) combinations with a count, so a week of a million rows
comes back as the far fewer combinations the engine has to decide (about 100,000 in bench/impact_bench.py).

Only requests the decision engine decided are replayed: the connection checks (ports, internal addresses) and
failures to decide are not something a grant or rule changes. In a trust's store a preview is of some sites' log
(those the console account may see, or the site a window or request is for), never the others'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import Session

from gateway.decisions.impact import Impact, ReplayRow, affected_hosts, needs_paths, preview
from gateway.decisions.types import Source
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.exceptions import EMPTY, ExceptionSet
from gateway.policy.store_grants import compile_store_grants
from gateway.store.grants import grants_in_force
from gateway.store.models.access_log import AccessLogEntry as Log
from gateway.store.models.access_log import reverse_host
from gateway.store.sites import within

DEFAULT_DAYS = 7
# Hosts per IN (...) list: well under every database's limit on bound parameters.
HOST_BATCH = 500
NOT_REPLAYED = (Source.CONNECTION.value, Source.FAILURE.value)


def preview_from_log(
    session: Session,
    compiled: CompiledPolicy,
    extra: ExceptionSet = EMPTY,
    *,
    now: datetime,
    proposed: CompiledPolicy | None = None,
    days: int = DEFAULT_DAYS,
    sites: tuple[str, ...] = (),
) -> Impact:
    """What `extra` grants (or a `proposed` policy) would have changed over the last `days` of the log of `sites`
    (every site for none), against the running policy with the store's grants in force now. A grant alone replays
    only the hosts it could touch; the requests to the others are counted, as unchanged, without being decided."""
    in_force = grants_of(session, compiled, now, sites)
    since = window_start(now, days)
    hosts = None if proposed is not None else affected_hosts(compiled, logged_hosts(session, since, sites), extra)
    rows = replay_rows(session, since, hosts=hosts, with_paths=needs_paths(compiled, proposed), sites=sites)
    result = preview(compiled, rows, extra, proposed=proposed, in_force=in_force)
    return result if hosts is None else dataclasses.replace(result, requests=logged_requests(session, since, sites))


def grants_of(session: Session, compiled: CompiledPolicy, now: datetime, sites: tuple[str, ...]) -> ExceptionSet:
    """The store's grants in force at the one site previewed (its own and those for every school), or all of them
    for several sites: a close figure, since each school's gateway follows only its own."""
    stored, _ = grants_in_force(session, now, sites[0] if len(sites) == 1 else None)
    return compile_store_grants(compiled, [item.grant for item in stored])[0]


def window_start(now: datetime, days: int = DEFAULT_DAYS) -> datetime:
    return now - timedelta(days=days)


def _in_window(since: datetime, sites: tuple[str, ...]) -> list[ColumnElement[bool]]:
    return [Log.at >= since, Log.source.not_in(NOT_REPLAYED), *within(Log.site, sites)]


def logged_hosts(session: Session, since: datetime, sites: tuple[str, ...] = ()) -> list[str]:
    """Every host the log of `sites` names since `since` (read from the reversed-host index alone for every site,
    so a week of a million rows is one index scan; connection-check rows included, which only makes a host a
    candidate)."""
    reversed_names = session.scalars(select(Log.host_rev).distinct().where(Log.at >= since, *within(Log.site, sites)))
    return [".".join(reversed(name.rstrip(".").split("."))) for name in reversed_names]


def logged_requests(session: Session, since: datetime, sites: tuple[str, ...] = ()) -> int:
    return session.scalar(select(func.count()).select_from(Log).where(*_in_window(since, sites))) or 0


def replay_rows(
    session: Session, since: datetime, *, hosts: Collection[str] | None = None, with_paths: bool = False,
    sites: tuple[str, ...] = (),
) -> Iterator[ReplayRow]:  # fmt: skip
    """The grouped rows of `sites` since `since`, for `hosts` only when given. Paths are kept apart only
    `with_paths` (when URL-prefix lists make a decision depend on them); otherwise every row is replayed as the
    site's root."""
    if hosts is None:
        yield from _grouped(session, since, None, with_paths, sites)
        return
    ordered = sorted(hosts)
    for start in range(0, len(ordered), HOST_BATCH):
        yield from _grouped(session, since, ordered[start : start + HOST_BATCH], with_paths, sites)


def _grouped(session: Session, since: datetime, hosts: list[str] | None, with_paths: bool,
             sites: tuple[str, ...]) -> Iterator[ReplayRow]:  # fmt: skip
    who = func.coalesce(Log.username, Log.device, Log.client_ip)
    path = Log.path if with_paths else literal("/")
    keys = [Log.host, Log.group_name, Log.username, Log.year_group, Log.school_class, Log.period, who]
    if with_paths:
        keys.append(Log.path)
    conditions = _in_window(since, sites)
    if hosts is not None:
        conditions.append(Log.host_rev.in_([reverse_host(host) for host in hosts]))
    statement = (
        select(Log.host, path, Log.group_name, Log.username, Log.year_group, Log.school_class, who,
               func.max(Log.at), func.count())  # fmt: skip
        .where(*conditions)
        .group_by(*keys)
        .execution_options(yield_per=5000)
    )
    for host, row_path, group, username, year_group, school_class, person, at, count in session.execute(statement):
        yield ReplayRow(host, row_path, group, username, year_group, school_class, at, person, count)
