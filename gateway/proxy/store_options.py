"""The store's options, declared once: the database every addon that reads or writes it shares, the spool for
writes while it is away, this school's name in a trust's shared store, and which of a machine's proxy workers
this is."""

from __future__ import annotations

import logging

from gateway.store.engine import DEFAULT_DB_URL


class StoreOptions:
    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        # Checking the schema revision loads Alembic, whose plugin set-up chatter would fill the proxy's log.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        loader.add_option("gateway_db", str, DEFAULT_DB_URL, "Database URL for the access log and console.")
        loader.add_option("gateway_spool", str, "var/spool",
                          "Directory for access-log and audit rows while the database is away.")  # fmt: skip
        loader.add_option("gateway_site", str, "", "This school's name in a trust's shared access log.")
        loader.add_option("gateway_worker", str, "",
                          "This proxy's number among `gateway run --workers N` (0..N-1); empty: the only one.")
