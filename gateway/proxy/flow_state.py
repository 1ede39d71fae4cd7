"""What the gateway's parts know about one flow, in one typed place under one metadata key.

The identity part fills `identity`; the enforcer `decision`, `instant` and the destination it decided on; the
access log reads them and marks the flow logged. A connection (CONNECT tunnel or TLS passed through) carries its
own `ConnectionState` the same way, under the client connection's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.decisions.types import Decision
from gateway.identity.types import Identity

KEY = "gateway"


@dataclass(slots=True)
class FlowState:
    identity: Identity | None = None
    # The roster username whose proxy credentials the request carried.
    proxy_user: str | None = None
    decision: Decision | None = None
    instant: datetime | None = None
    # The destination that was decided on and is contacted (not the Host header when they differ).
    host: str | None = None
    port: int | None = None
    logged: bool = False


def flow_state(flow: Any) -> FlowState:
    """The flow's state, made on first use. `flow` is any mitmproxy flow (it has `.metadata`)."""
    state = flow.metadata.get(KEY)
    if state is None:
        state = flow.metadata[KEY] = FlowState()
    return state
