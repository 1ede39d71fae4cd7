"""The school's own blocks, made by the e-safety officer from a report (or the local blocks page) in one click.

Each change raises the `local_blocks` counter, so every proxy reads them again within its polling interval and
lays them over its policy (`gateway.policy.local_blocks`). A removed block stays as a row with who removed it,
when and why.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.lists.hosts import is_ip_literal, normalise_url_prefix, split_url_prefix
from gateway.policy.local_blocks import LocalEntry, site_of
from gateway.store.models.reports import LocalBlock, Report
from gateway.store.reports import WAITING
from gateway.store.versions import bump

LOCAL_BLOCKS = "local_blocks"
SCOPES = ("site", "url")


class BlockRefused(ValueError):
    """A block that cannot be made, with the reason to show."""


def blocks_in_force(session: Session, site: str | None = None) -> list[LocalBlock]:
    """Blocks not removed; with `site`, only that school's and those made for no school in particular."""
    query = select(LocalBlock).where(LocalBlock.removed_at.is_(None))
    if site is not None:
        query = query.where(or_(LocalBlock.site == site, LocalBlock.site.is_(None)))
    return list(session.scalars(query.order_by(LocalBlock.id)))


def entries_in_force(session: Session, site: str | None = None) -> tuple[LocalEntry, ...]:
    """What the proxies of `site` lay over their policy."""
    return tuple(LocalEntry(block.host, block.path_prefix) for block in blocks_in_force(session, site))


def place_of(url: str | None, host: str | None, scope: str) -> tuple[str, str | None]:
    """(host, path prefix or None) a block of `scope` names, normalised as the proxies will match it."""
    if scope not in SCOPES:
        raise BlockRefused(f"block the site or the URL, not {scope!r}")
    parts = urlsplit(url) if url else None
    raw_host = host or (parts.hostname if parts else None) or ""
    if scope == "site":
        site = site_of(raw_host)
        if site is None:
            raise BlockRefused(f"not a valid host name: {raw_host!r}")
        if is_ip_literal(site):
            raise BlockRefused("an address is not a site: block sites by name")
        return site, None
    if parts is None or not parts.path.strip("/") and not parts.query:
        raise BlockRefused("the report names no page below the site: block the whole site instead")
    entry = normalise_url_prefix(raw_host + parts.path + (f"?{parts.query}" if parts.query else ""))
    if entry is None:
        raise BlockRefused(f"not a valid URL: {url!r}")
    return split_url_prefix(entry)


def add_block(session: Session, *, host: str, path_prefix: str | None, reason: str, by: str, now: datetime,
              report_id: int | None = None, site: str | None = None) -> LocalBlock:  # fmt: skip
    """A block in force for `host` (and `path_prefix`): an existing one, else a new one. The caller commits."""
    if not reason.strip():
        raise BlockRefused("give a reason: it is shown on the block page")
    same_place = LocalBlock.path_prefix.is_(None) if path_prefix is None else LocalBlock.path_prefix == path_prefix
    existing = session.scalar(select(LocalBlock).where(LocalBlock.host == host, LocalBlock.removed_at.is_(None),
                                                       same_place))  # fmt: skip
    if existing is not None:
        return existing
    block = LocalBlock(host=host, path_prefix=path_prefix, reason=reason.strip(), created_by=by, created_at=now,
                       report_id=report_id, site=site)  # fmt: skip
    session.add(block)
    bump(session, LOCAL_BLOCKS)
    session.flush()
    return block


def block_site(session: Session, report_id: int, *, by: str, scope: str, reason: str, now: datetime) -> LocalBlock:
    """Block a report's site (and its subdomains) or just its URL for the whole school, and mark it blocked."""
    report = session.get(Report, report_id)
    if report is None:
        raise BlockRefused(f"no report {report_id}")
    if report.status not in WAITING:
        raise BlockRefused(f"report {report_id} was already decided ({report.status})")
    host, prefix = place_of(report.url, report.host, scope)
    block = add_block(session, host=host, path_prefix=prefix, reason=reason, by=by, now=now, report_id=report.id,
                      site=report.site)  # fmt: skip
    report.status, report.decided_by, report.decided_at = "blocked", by, now
    report.decision_note = reason.strip()
    return block


def remove_block(session: Session, block_id: int, *, by: str, reason: str, now: datetime) -> LocalBlock:
    block = session.get(LocalBlock, block_id)
    if block is None or block.removed_at is not None:
        raise BlockRefused(f"no block {block_id} in force")
    if not reason.strip():
        raise BlockRefused("give a reason for lifting the block")
    block.removed_at, block.removed_by, block.removal_reason = now, by, reason.strip()
    bump(session, LOCAL_BLOCKS)
    return block
