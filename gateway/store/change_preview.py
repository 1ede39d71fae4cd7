"""The impact preview of a rule or list change over the access log: only the hosts the change can reach are
replayed (a site added to a list touches that site; a rule touches the hosts on its lists), and the requests to
the others are counted, as unchanged, without being decided. A change that reaches every site replays the week."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.decisions.impact import Impact, needs_paths, preview
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.proposed_change import ProposedPolicy
from gateway.store.impact_rows import (DEFAULT_DAYS, grants_of, logged_hosts, logged_requests, replay_rows,
                                       window_start)  # fmt: skip


def preview_change(
    session: Session, compiled: CompiledPolicy, proposed: ProposedPolicy, *, now: datetime, days: int = DEFAULT_DAYS,
    sites: tuple[str, ...] = (),
) -> Impact:
    """What `proposed` would have changed over the last `days` of the log of `sites` (every site for none), against
    the running policy with the store's grants in force now (they apply to both sides: list bits do not move in a
    proposal)."""
    in_force = grants_of(session, compiled, now, sites)
    since = window_start(now, days)
    hosts = proposed.affected_hosts(compiled, logged_hosts(session, since, sites))
    rows = replay_rows(session, since, hosts=hosts, with_paths=needs_paths(compiled, proposed.compiled), sites=sites)
    result = preview(compiled, rows, proposed=proposed.compiled, in_force=in_force)
    return result if hosts is None else dataclasses.replace(result, requests=logged_requests(session, since, sites))
