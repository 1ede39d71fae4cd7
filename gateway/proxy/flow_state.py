"""What the gateway's parts know about one flow, in one typed place under one metadata key.

The identity part fills `identity`; the enforcer `decision`, `instant` and the destination it decided on; the
access log reads them and marks the flow logged. A connection (CONNECT tunnel or TLS passed through) carries its
own `ConnectionState` the same way, under the client connection's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.circumvention.incident import Detection
from gateway.content.findings import ContentFinding
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
    # What content analysis flagged or blocked on the page or in the search (None when it found nothing to act on).
    finding: ContentFinding | None = None
    # A circumvention attempt a detector saw on this request: it is blocked and the access log row carries it.
    detection: Detection | None = None
    logged: bool = False


def flow_state(flow: Any) -> FlowState:
    """The flow's state, made on first use. `flow` is any mitmproxy flow (it has `.metadata`)."""
    state = flow.metadata.get(KEY)
    if state is None:
        state = flow.metadata[KEY] = FlowState()
    return state


@dataclass(slots=True)
class ConnectionState:
    """One client connection's tunnel: the CONNECT target (or, transparently, the original destination), what
    was decided for it, and for a connection relayed untouched, what crossed it."""

    identity: Identity
    instant: datetime
    target: str | None = None
    port: int | None = None
    decision: Decision | None = None
    sni: str | None = None
    # A circumvention attempt a detector saw on this connection (bare address, no SNI, bytes that are not TLS).
    detection: Detection | None = None
    # Something failed while deciding: every request on this connection is blocked.
    failed: bool = False
    # Relayed without interception (a never-intercept host, or a raw tunnel the policy names).
    relayed: bool = False
    started: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0

    @property
    def blocked(self) -> bool:
        return self.failed or (self.decision is not None and self.decision.blocked)


class Connections:
    """The tunnels open now, by client connection id; the guard adds them, `client_disconnected` drops them."""

    def __init__(self) -> None:
        self._by_client: dict[str, ConnectionState] = {}

    def get(self, client_id: str) -> ConnectionState | None:
        return self._by_client.get(client_id)

    def put(self, client_id: str, state: ConnectionState) -> None:
        self._by_client[client_id] = state

    def drop(self, client_id: str) -> None:
        self._by_client.pop(client_id, None)

    def __len__(self) -> int:
        return len(self._by_client)
