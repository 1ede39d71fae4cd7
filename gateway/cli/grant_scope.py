"""The options that say what a grant lifts and for whom, shared by `gateway grants add` and `gateway impact`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

SCOPE_OPTIONS = (
    click.option("--list", "lists", multiple=True, help="A policy list the grant lifts (repeat or comma-separate)."),
    click.option("--domain", "domains", multiple=True, help="A site the grant lifts, with its subdomains."),
    click.option("--group", "groups", multiple=True, help="Only for this group."),
    click.option("--user", "users", multiple=True, help="Only for this person (roster username)."),
    click.option("--class", "classes", multiple=True, help="Only for this class."),
    click.option("--year", "year_groups", multiple=True, type=int, help="Only for this year group."),
    click.option("--period", "periods", multiple=True, help="Only in this kind of period (lesson, break, ...)."),
)


def grant_scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(SCOPE_OPTIONS):
        command = option(command)
    return command


def split_items(values: tuple[str, ...]) -> list[str] | None:
    """Repeated and comma-separated values as one list; None when there are none."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return items or None
