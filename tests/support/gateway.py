"""A real mitmdump running the gateway for end-to-end tests: a migrated SQLite store in the folder, a spool beside
it, the clock pinned, and (optionally) every upstream connection routed to a test origin."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.store.migrate import upgrade
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer

# A Monday lesson in the demo policy's autumn term.
MONDAY_LESSON = "2026-09-07T09:30"
GATEWAY_SCRIPT = "addons/gateway.py"


def start_gateway(folder: Path, policy: Path, *, at: str = MONDAY_LESSON, origin: OriginServer | None = None,
                  scripts: Sequence[str | Path] = (), extra_args: Sequence[str] = (), **options: Any) -> Mitmdump:  # fmt: skip
    """Start the gateway (then `scripts`) with `policy`; returns once the policy is loaded."""
    db = f"sqlite:///{folder / 'gateway.db'}"
    upgrade(db)
    return Mitmdump(
        [GATEWAY_SCRIPT, *scripts],
        {"gateway_policy": policy, "gateway_now": at, "gateway_db": db, "gateway_spool": folder / "spool", **options},
        workdir=folder, origin=origin, extra_args=extra_args, ready_line=r"policy .* loaded",
    ).start()  # fmt: skip
