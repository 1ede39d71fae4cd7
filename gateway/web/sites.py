"""Which sites of a trust the signed-in account may see, and the site the console writes records for.

An account's `sites` (space separated) limit every list, record and export to those sites; an empty `sites` is a
trust-wide role that sees every site. A record of another site is answered as if it did not exist (404), so a
guessed id tells nothing, and a site named in a query string only narrows what the account may already see.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, g
from flask_login import current_user
from sqlalchemy import ColumnElement, select

from gateway.policy.loader import PolicyError

DEFAULT_SITE = "main"


def parse(text: str | None) -> tuple[str, ...]:
    return tuple(sorted(set((text or "").replace(",", " ").split())))


def allowed() -> tuple[str, ...]:
    """The signed-in account's sites (or the API caller's); () for every site."""
    if "api_sites" in g:
        return g.api_sites  # type: ignore[no-any-return]
    return parse(getattr(current_user, "sites", ""))


def conditions(column: Any) -> list[ColumnElement[bool]]:
    """The WHERE clause limiting `column` to the account's sites (none for a trust-wide account)."""
    sites = allowed()
    return [column.in_(sites)] if sites else []


def visible(site: str | None) -> bool:
    sites = allowed()
    return not sites or site in sites


def require_visible(record: Any) -> Any:
    """The record, or 404 when it is missing or belongs to a site the account may not see."""
    if record is None or not visible(getattr(record, "site", None)):
        abort(404)
    return record


def chosen(args: Any) -> str:
    """The `site` a page or export was asked to narrow to (already limited to the account's sites by `conditions`)."""
    return str(args.get("site", "")).strip()[:64]


def narrowed(args: Any) -> tuple[str, ...]:
    """The sites a page shows: the one its `site` asks for, else all the account's. A site the account may not see
    is a 404, whatever its name, so it tells nothing about which sites exist."""
    site = chosen(args)
    if not site:
        return allowed()
    if not visible(site):
        abort(404)
    return (site,)


def choices() -> tuple[str, ...]:
    """The sites a site filter offers: the account's own; for a trust-wide account, every site some account is
    limited to and the console's own (a cheap list: the log itself is never scanned for it)."""
    from gateway.store.models.users import ConsoleUser
    from gateway.web.app import db

    sites = allowed()
    if sites:
        return sites
    named = {site for text in db().scalars(select(ConsoleUser.sites).distinct()) for site in parse(text)}
    return tuple(sorted(named | {console_site()}))


def audit_site() -> str:
    """The site an audit row of this request belongs to: the account's, when it has exactly one, else the
    console's (so a site's head sees what was done at their site, whichever console it was done in)."""
    own = allowed() if getattr(current_user, "is_authenticated", False) or "api_sites" in g else ()
    return own[0] if len(own) == 1 else console_site()


def console_site() -> str:
    """The site records the console makes belong to: its policy's `school.site`, else "main"."""
    from gateway.web.console_policy import console_policy

    if not current_app.config["GATEWAY"].policy_path:
        return DEFAULT_SITE
    try:
        compiled = console_policy()
    except (OSError, PolicyError):
        return DEFAULT_SITE
    return compiled.policy.school.site if compiled is not None else DEFAULT_SITE
