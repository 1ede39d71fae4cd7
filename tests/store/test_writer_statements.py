"""The SQLite access log's INSERT statements come in a few lengths only, whatever the batches' lengths.

sqlite3 keeps a connection's last 128 prepared statements, and a 500-row INSERT compiles to about 2 MB: with one
statement per batch length, a proxy under steady load (batches of every length) grew by some 250 MB.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from gateway.store.engine import make_engine
from gateway.store.writer import RowInserter, statement_lengths
from tests.store.test_store_log import row, row_ids


def test_batches_of_any_length_are_all_stored_through_at_most_ten_statements(store_url: str) -> None:
    engine = make_engine(store_url)
    statements: set[str] = set()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO access_log"):
            statements.add(statement)

    insert = RowInserter(engine)
    lengths = [1, 2, 3, 7, 99, 255, 256, 257, 499, 500, 511, 512, 513, 777, 1023, 1024, 1500]
    numbers = iter(range(10**6))
    batches = [[row(next(numbers)) for _ in range(length)] for length in lengths]
    try:
        for batch in batches:
            with engine.begin() as connection:
                insert(connection, batch)
    finally:
        engine.dispose()

    assert row_ids(store_url) == [r["row_id"] for batch in batches for r in batch]
    assert len(statements) <= 10


def test_statement_lengths_cover_the_batch_in_powers_of_two() -> None:
    for rows in range(0, 2000):
        lengths = statement_lengths(rows, 512)
        assert sum(lengths) == rows
        assert all(length & (length - 1) == 0 and length <= 512 for length in lengths)
