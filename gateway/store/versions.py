"""The store's change counters: one `store_version` row per kind of shared state, raised in the transaction that
changes it, so every proxy polls all of them in one small query and reads again only the state whose counter moved.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.store.models.grants import StoreVersion

GRANTS = "grants"
REQUESTS = "requests"
UPSERTS = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


def bump(session: Session, name: str) -> None:
    # One upsert, not update-then-insert: two first changes at once would both insert and one would fail.
    upsert = UPSERTS[session.get_bind().dialect.name](StoreVersion).values(name=name, version=1)
    session.execute(upsert.on_conflict_do_update(index_elements=[StoreVersion.name],
                                                 set_={"version": StoreVersion.version + 1}))  # fmt: skip


def versions(session: Session, names: Iterable[str]) -> dict[str, int]:
    """Each counter's value; 0 for one never raised."""
    wanted = tuple(names)
    found = dict(session.execute(select(StoreVersion.name, StoreVersion.version)
                                 .where(StoreVersion.name.in_(wanted))).all())  # fmt: skip
    return {name: found.get(name, 0) for name in wanted}
