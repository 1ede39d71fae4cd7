"""A trust's sites in store queries: the condition that keeps a query to the sites a console account may see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement


def within(column: Any, sites: tuple[str, ...]) -> list[ColumnElement[bool]]:
    """[column IN sites], or no condition at all for () (every site: a trust-wide account)."""
    return [column.in_(sites)] if sites else []
