"""Decides every connection, not only the requests inside it.

- A CONNECT is decided on its target before anything upstream is contacted: a port the policy does not name or an
  internal address is refused; a blocked site gets a tunnel the gateway answers itself, with no upstream
  connection, so its TLS is intercepted and the block page shows; an allowed site is connected at once
  (mitmproxy's eager strategy, which keeps HTTPS fast).
- In the tunnel, TLS passes through untouched only to a host the client's decision allows that is never
  intercepted, or passed through for the client's group (`interception.pass_through`, `policy/interception.py`),
  when the TLS server name and the CONNECT target name the same host (in transparent mode: when the name resolves
  to the original destination) and the hello does not hide the real name (ECH). Everything else is intercepted and
  decided request by request; a blocked host gets its block page that way.
- Bytes that are neither TLS nor HTTP are relayed only to hosts the policy names; otherwise the connection is
  closed.
- Every connection relayed untouched is logged when it ends: client, identity, host, TLS name, bytes each way and
  duration; every refused one when it is refused.

In the modes where the destination comes with the connection (transparent, SOCKS5, WireGuard, local), mitmproxy
connects as soon as the client does: the original destination is decided then, and a refused or blocked one is
never connected (the client sees its connection fail; a block page needs the name, which only TLS brings later).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable

from mitmproxy import ctx, http, tls
from mitmproxy.proxy import commands, events, layer, layers, server_hooks
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.tls import parse_client_hello

from gateway.decisions.engine import decide
from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.lists.hosts import is_ip_literal, normalise_host
from gateway.policy.interception import passes_through
from gateway.proxy.block_response import refuse
from gateway.proxy.circumvention_guard import CircumventionGuard
from gateway.proxy.clock import Clock
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.flow_state import Connections, ConnectionState, flow_state
from gateway.proxy.grant_follower import GrantFollower
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource

log = logging.getLogger(__name__)

# Proxy modes in which a connection arrives with its destination, instead of naming it in a CONNECT.
DESTINATION_KNOWN = frozenset({"transparent", "socks5", "wireguard", "local"})

# Encrypted ClientHello (ECH) and its draft, encrypted SNI: the server name in the clear is a front for another.
HIDDEN_NAME_EXTENSIONS = frozenset({0xFE0D, 0xFFCE})

# Called with a connection that ended or was refused, and the error if any: the access log's `connection`.
Record = Callable[[ConnectionState, str | None], None]


class RefusedConnection(layer.Layer):
    """Closes the client's connection at once; nothing it sent is relayed."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield commands.CloseConnection(self.context.client)


class RelayedConnection(layers.TCPLayer):
    """A connection relayed untouched. Its bytes are counted, a ban stops it and its end is logged here in the
    layer, with no TCP flow: a hook per message is a round trip through every addon, which cost the relay more than
    relaying the message did."""

    def __init__(self, context: Context, tunnel: ConnectionState, guard: TunnelGuard) -> None:
        super().__init__(context, ignore=True)
        self.tunnel = tunnel
        self.guard = guard

    def start(self, _: events.Event) -> layer.CommandGenerator[None]:
        if self.context.server.timestamp_start is None:
            error = yield commands.OpenConnection(self.context.server)
            if error:
                self.guard.relay_ended(self.tunnel, str(error))
                yield commands.CloseConnection(self.context.client)
                self._handle_event = self.done
                return
        self._handle_event = self.relay_messages

    _handle_event = start

    def relay_messages(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            from_client = event.connection == self.context.client
            if self.guard.carries(self.tunnel, from_client, len(event.data)):
                yield commands.SendData(self.context.server if from_client else self.context.client, event.data)
            return
        yield from super().relay_messages(event)
        if self._handle_event == self.done:
            self.guard.relay_ended(self.tunnel, None)


class TunnelGuard:
    def __init__(self, policy: PolicySource, clock: Clock, guard: DestinationGuard, connections: Connections,
                 record: Record, identify: Callable[[str], Identity], grants: GrantFollower,
                 circumvention: CircumventionGuard) -> None:  # fmt: skip
        self.identify = identify
        # Told of each connection decided here, to block and record attempts to get round the filter.
        self.circumvention = circumvention
        self.grants = grants
        self.policy = policy
        self.clock = clock
        self.guard = guard
        self.connections = connections
        self.record = record

    # -- CONNECT ------------------------------------------------------------------------------------------------
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return  # proxy authentication asked for credentials
        compiled = self.policy.current
        identity = identity_of(flow, self.policy)
        instant = compiled.calendar.local(self.clock.now())
        target, port = normalise_host(flow.request.host), flow.request.port
        tunnel = ConnectionState(identity=identity, instant=instant, target=target, port=port)
        self.connections.put(flow.client_conn.id, tunnel)
        state = flow_state(flow)
        state.instant, state.host, state.port = instant, target, port
        period = compiled.calendar.period(instant)
        if target is None:
            tunnel.decision = _refusal(period, flow.request.host, "malformed-host", "An address the gateway could not read.")
        elif port not in compiled.policy.connections.connect_ports:
            tunnel.decision = _refusal(period, target, "connect-port", f"Tunnels to port {port} are not allowed.")
        elif self.guard.refuses_host(target, port):
            tunnel.decision = _refusal(period, target, "internal-address", "Internal addresses cannot be reached.")
        else:
            tunnel.decision = decide(compiled, identity, target, "", instant, self.grants.exceptions_for(compiled))
        if target is not None:
            self.circumvention.on_connect(tunnel, flow.request.host)
        state.decision = tunnel.decision
        if tunnel.decision.source is Source.CONNECTION:
            refuse(flow, 403, f"The school web gateway refused this connection: {tunnel.decision.reason}")
        elif tunnel.decision.blocked:
            # Answer the CONNECT here: nothing upstream is contacted, and the block page shows inside the tunnel.
            flow.response = established(flow)
        if tunnel.decision.blocked:
            # The attempt is logged even if the client gives up at the certificate (an app that pins its own).
            self.record(tunnel, None)

    def client_disconnected(self, client) -> None:  # type: ignore[no-untyped-def]
        self.connections.drop(client.id)

    # -- what the tunnel carries -----------------------------------------------------------------------------
    async def next_layer(self, data: layer.NextLayer) -> None:
        # Scripts run before mitmproxy's own NextLayer addon: let it choose first (it leaves a choice made), then
        # judge the choice.
        ctx.master.addons.get("nextlayer").next_layer(data)
        chosen = data.layer
        if chosen is None or isinstance(chosen, (RelayedConnection, RefusedConnection)):
            return
        context = data.context
        tunnel = self.connections.get(context.client.id)
        if tunnel is None:
            if context.server.address is None or context.client.proxy_mode.type_name not in DESTINATION_KNOWN:
                return  # the proxy's own HTTP layer: requests are decided one by one
            tunnel = self._destination_tunnel(context.client, context.server.address)
        if isinstance(chosen, layers.ServerTLSLayer | layers.ClientTLSLayer):
            await self._tls(data, tunnel)
        elif isinstance(chosen, layers.TCPLayer):
            self._raw(data, tunnel)

    async def _tls(self, nextlayer: layer.NextLayer, tunnel: ConnectionState) -> None:
        hello = parse_client_hello(nextlayer.data_client())
        sni = normalise_host(hello.sni) if hello is not None and hello.sni else None
        tunnel.sni = sni
        compiled = self.policy.current
        if sni is not None and sni != tunnel.target and not tunnel.blocked:
            # The strictest of the two names stands for everything in the tunnel.
            by_sni = decide(compiled, tunnel.identity, sni, "", tunnel.instant, self.grants.exceptions_for(compiled))
            if by_sni.blocked:
                tunnel.decision = by_sni
        if self.circumvention.on_hello(tunnel, sni):
            self.record(tunnel, None)
        decision = tunnel.decision
        if hello is None or sni is None or tunnel.blocked or decision is None or decision.action is not Action.ALLOW:
            return
        if any(kind in HIDDEN_NAME_EXTENSIONS for kind, _ in hello.extensions):
            return  # the name in the clear is not the site: only intercepting shows which site it is
        bits = 0
        for _, entry_bits in compiled.domains.match(sni):
            bits |= entry_bits
        if bits & compiled.illegal_mask:
            return
        never = bits & compiled.never_intercept_mask
        if not never and not passes_through(compiled, tunnel.identity.group, sni, bits):
            return
        if not await self._names_destination(sni, tunnel, nextlayer.context):
            return
        self._relay(nextlayer, tunnel)

    async def _names_destination(self, sni: str, tunnel: ConnectionState, context) -> bool:  # type: ignore[no-untyped-def]
        if tunnel.target is None:
            return False
        if not is_ip_literal(tunnel.target):
            return sni == tunnel.target
        # Transparent: the original destination is an address; the name must resolve to it.
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(sni, tunnel.port, type=socket.SOCK_STREAM)
        except OSError:
            return False
        destination = ipaddress.ip_address(tunnel.target)
        return any(ipaddress.ip_address(info[4][0].partition("%")[0]) == destination for info in infos)

    def _raw(self, nextlayer: layer.NextLayer, tunnel: ConnectionState) -> None:
        compiled = self.policy.current
        allowed = tunnel.target is not None and not tunnel.blocked and _listed(tunnel.target, compiled.policy.connections.raw_tunnel_domains)
        if allowed:
            self._relay(nextlayer, tunnel)
            return
        period = compiled.calendar.period(tunnel.instant)
        tunnel.decision = _refusal(period, tunnel.target or "unknown", "raw-tunnel",
                                   "Only web traffic may cross the school's filter.")  # fmt: skip
        nextlayer.layer = RefusedConnection(nextlayer.context)
        self.circumvention.on_raw(tunnel, nextlayer.data_client())
        self.record(tunnel, None)
        log.warning("closed a tunnel to %s from %s: neither TLS nor HTTP", tunnel.target, _peer(nextlayer.context))

    def _relay(self, nextlayer: layer.NextLayer, tunnel: ConnectionState) -> None:
        tunnel.relayed, tunnel.started = True, time.monotonic()
        nextlayer.layer = RelayedConnection(nextlayer.context, tunnel, self)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        sni = data.client_hello.sni
        if sni and sni.endswith(".") and data.context.server.sni is None:
            # "www.example.org." is the same site, but mitmproxy's upstream TLS cannot verify a name that keeps the
            # root's dot: the browser would wait on a handshake that never completes.
            data.context.server.sni = sni.rstrip(".")
        tunnel = self.connections.get(data.context.client.id)
        if tunnel is not None and tunnel.blocked:
            # Scripts run before mitmproxy's TlsConfig, which would ask for the server's TLS first: let it, then
            # overrule. Certificates come from the name alone: a blocked site is never contacted, even for that.
            ctx.master.addons.get("tlsconfig").tls_clienthello(data)
            data.establish_server_tls_first = False

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        tunnel = self.connections.get(data.client.id)
        if tunnel is None and data.client.proxy_mode.type_name in DESTINATION_KNOWN and data.server.address:
            tunnel = self._destination_tunnel(data.client, data.server.address)
            if tunnel.blocked:
                self.record(tunnel, None)
        if tunnel is not None and tunnel.blocked and not data.server.error:
            data.server.error = "blocked by the school web gateway"

    # -- relayed connections (called by RelayedConnection) ----------------------------------------------------
    def carries(self, tunnel: ConnectionState, from_client: bool, size: int) -> bool:
        """Counts bytes crossing a relayed connection; False once its person is banned: a ban applies to what is
        already open too, not only to the next connection."""
        if from_client:
            tunnel.bytes_up += size
        else:
            tunnel.bytes_down += size
        bans = self.grants.exceptions_for(self.policy.current).bans
        return bans is None or bans.blocking(tunnel.identity, tunnel.target or "", "") is None

    def relay_ended(self, tunnel: ConnectionState, error: str | None) -> None:
        if tunnel.relayed:
            self.record(tunnel, error)
            tunnel.relayed = False

    def _destination_tunnel(self, client, address: tuple[str, int]) -> ConnectionState:  # type: ignore[no-untyped-def]
        """The tunnel of a connection whose destination came with it (transparent, SOCKS5), decided on that."""
        compiled = self.policy.current
        raw, port = address
        target = normalise_host(raw)
        peer = client.peername[0] if client.peername else ""
        identity = self.identify(peer)
        instant = compiled.calendar.local(self.clock.now())
        tunnel = ConnectionState(identity=identity, instant=instant, target=target, port=port)
        period = compiled.calendar.period(instant)
        if target is None:
            tunnel.decision = _refusal(period, raw, "malformed-host", "An address the gateway could not read.")
        elif self.guard.refuses_host(target, port):
            tunnel.decision = _refusal(period, target, "internal-address", "Internal addresses cannot be reached.")
        else:
            tunnel.decision = decide(compiled, identity, target, "", instant, self.grants.exceptions_for(compiled))
            self.circumvention.on_connect(tunnel, raw, by_name=False)
        self.connections.put(client.id, tunnel)
        return tunnel


def established(flow: http.HTTPFlow) -> http.Response:
    """The answer mitmproxy itself gives a CONNECT (no headers: some clients reject any)."""
    now = time.time()
    return http.Response(flow.request.data.http_version, 200, b"Connection established", http.Headers(), b"", None,
                         now, now)  # fmt: skip


def _refusal(period: PeriodKind, host: str, rule: str, reason: str) -> Decision:
    return Decision(Action.BLOCK, Source.CONNECTION, reason, period, host, rule=rule)


def _listed(host: str, domains: list[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _peer(has_client) -> str:  # type: ignore[no-untyped-def]
    """The client's address, from a flow (`client_conn`) or a layer context (`client`)."""
    client = getattr(has_client, "client_conn", None) or has_client.client
    peer = client.peername
    return peer[0] if peer else ""

