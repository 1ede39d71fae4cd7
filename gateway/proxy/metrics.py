"""mitmproxy addon: a Prometheus endpoint per proxy worker (`gateway_metrics_listen`, off by default).

The hooks only add to plain integers the event loop alone writes: no lock, no label lookup in prometheus_client,
no object made per request beyond one small tuple key per decision. Everything else (the writer's queue, the
spool on disk, the policy, grants, bans, identity sources) is read when Prometheus scrapes, in the server's own
thread (`gateway.proxy.metrics_collector`), so a slow disk or a scrape storm never touches the event loop.

Labels are closed sets: actions, decision sources, the policy's list and category names, hooks, schemes. Never a
person, an address, a host or a URL: a label is kept for ever by Prometheus, and a pupil could mint one per request.

Where the counts come from:
- decisions on requests: this part's `response` and `error`, placed just before the access log with the access
  log's own test (a decision, not logged yet, not a CONNECT), so it counts each row the access log writes;
- decisions on connections: `counted(access_log.connection)`, the callback the tunnel guard and age gate log with;
- decision latency: the chain times the hooks that decide (`AddonChain(timers=metrics.timers())`), the fail-closed
  handler included, so a failing part's time counts too;
- fail-closed: `failures(FailClosed(...).handlers())` counts each time a part raised and the gateway blocked;
- refused policy reloads: the policy source's own count (`PolicySource.refused_reloads`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from mitmproxy import ctx, exceptions, http
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import start_wsgi_server

from gateway.decisions.types import Action, Decision, Source
from gateway.policy.compiled import CompiledPolicy
from gateway.proxy.access_log import AccessLog
from gateway.proxy.bans import BanKeeper
from gateway.proxy.flow_state import ConnectionState, flow_state
from gateway.proxy.grant_follower import GrantFollower
from gateway.proxy.identity_sources import IdentitySources
from gateway.proxy.policy_source import PolicySource

log = logging.getLogger(__name__)

# Upper bounds of the decision-latency buckets, in nanoseconds: 10 µs to 100 ms (a decision takes tens of µs; a
# list lookup that takes a millisecond is already news).
LATENCY_BOUNDS_NS = (
    10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000,
)  # fmt: skip
# The hooks that decide, timed by the chain: a request's (its headers are decided before the body is read), a
# CONNECT's and a TLS ClientHello's.
TIMED_HOOKS = ("requestheaders", "http_connect", "tls_clienthello")
SCHEMES = {b"http": "http", b"https": "https"}


class LatencyHistogram:
    """Cumulative-bucket latency counts, added to by the event loop and read whole by the scrape thread."""

    __slots__ = ("bounds", "counts", "sum_ns")

    def __init__(self, bounds: tuple[int, ...] = LATENCY_BOUNDS_NS) -> None:
        self.bounds = bounds
        # One per bound, and one past the last (+Inf).
        self.counts = [0] * (len(bounds) + 1)
        self.sum_ns = 0

    def observe(self, ns: int) -> None:
        self.counts[bisect_left(self.bounds, ns)] += 1
        self.sum_ns += ns


class Metrics:
    """Counts what the proxy decides and serves them, with the state `MetricsCollector` reads, to Prometheus."""

    def __init__(self, policy: PolicySource, access_log: AccessLog, grants: GrantFollower, bans: BanKeeper,
                 identity_sources: IdentitySources) -> None:  # fmt: skip
        # The parts the collector reads at scrape time.
        self.policy = policy
        self.access_log = access_log
        self.grants = grants
        self.bans = bans
        self.identity_sources = identity_sources
        self.requests = dict.fromkeys((*SCHEMES.values(), "other"), 0)
        self.connections = 0
        self.open_connections = 0
        # (action, source, category or None) -> decisions.
        self.decisions: dict[tuple[Action, Source, str | None], int] = {}
        self.fail_closed = dict.fromkeys(("requestheaders", "request", "response", "http_connect", "next_layer",
                                          "tls_clienthello", "server_connect"), 0)  # fmt: skip
        self.latency = {hook: LatencyHistogram() for hook in TIMED_HOOKS}
        self.policy_installs = 0
        self.policy_loaded_at = 0.0
        self.policy_file = ""
        self.policy_sha256 = ""
        self.worker = "0"
        self.audit_spool: Path | None = None
        self._server: WSGIServer | None = None
        policy.on_install(self._installed)

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "gateway_metrics_listen", str, "",
            "Serve Prometheus metrics at HOST:PORT (a bare PORT listens on 127.0.0.1); empty: off. Anything but "
            "loopback exposes the counts to the network: choose it deliberately.",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if "gateway_worker" in updated and "gateway_worker" in ctx.options:
            self.worker = ctx.options.gateway_worker or "0"
        if "gateway_spool" in updated and "gateway_spool" in ctx.options:
            # Where the policy source keeps its audit outbox.
            self.audit_spool = Path(ctx.options.gateway_spool) / "audit"
        if "gateway_metrics_listen" in updated:
            self._stop_server()
            if ctx.options.gateway_metrics_listen:
                self._start_server(ctx.options.gateway_metrics_listen)

    def done(self) -> None:
        self._stop_server()

    # The hot path.

    def client_connected(self, client: Any) -> None:
        self.connections += 1
        self.open_connections += 1

    def client_disconnected(self, client: Any) -> None:
        self.open_connections -= 1

    def response(self, flow: http.HTTPFlow) -> None:
        self._count_request(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._count_request(flow)

    def _count_request(self, flow: http.HTTPFlow) -> None:
        # The access log's own test, so each row it is about to write is counted once (it marks the flow logged).
        state = flow_state(flow)
        # `request.data.method`: the bytes as read; `request.method` decodes them again on every read.
        if state.decision is not None and not state.logged and flow.request.data.method != b"CONNECT":
            self._count(state.decision)

    def _count(self, decision: Decision) -> None:
        # The enum members themselves (`.value` is a slow descriptor); the collector makes them label strings.
        key = (decision.action, decision.source, decision.list)
        decisions = self.decisions
        decisions[key] = decisions.get(key, 0) + 1

    def counted(self, log_connection: Callable[[ConnectionState, str | None], None]
                ) -> Callable[[ConnectionState, str | None], None]:  # fmt: skip
        """The access log's connection callback, counting each connection decision it logs."""

        def log_and_count(tunnel: ConnectionState, error: str | None) -> None:
            log_connection(tunnel, error)
            if tunnel.decision is not None:
                self._count(tunnel.decision)

        return log_and_count

    def failures(self, handlers: Mapping[str, Callable[..., None]]) -> dict[str, Callable[..., None]]:
        """The chain's fail-closed handlers, each counting the times a part raised in its hook."""
        return {hook: self._failure_counted(hook, handler) for hook, handler in handlers.items()}

    def _failure_counted(self, hook: str, handler: Callable[..., None]) -> Callable[..., None]:
        counts = self.fail_closed
        counts.setdefault(hook, 0)

        def handle_and_count(*args: Any) -> None:
            counts[hook] += 1
            handler(*args)

        return handle_and_count

    def timers(self) -> dict[str, Callable[..., None]]:
        """For `AddonChain(timers=...)`: hook -> called with the nanoseconds the chain spent in it and its args."""
        histogram = self.latency["requestheaders"]
        bounds, counts, requests = histogram.bounds, histogram.counts, self.requests

        def request_timed(ns: int, flow: http.HTTPFlow) -> None:
            # `LatencyHistogram.observe` inlined: this runs for every request.
            counts[bisect_left(bounds, ns)] += 1
            histogram.sum_ns += ns
            # The bytes as read (`request.scheme` decodes them on every read); anything odd counts as other.
            requests[SCHEMES.get(flow.request.data.scheme, "other")] += 1

        return {
            "requestheaders": request_timed,
            "http_connect": _ignoring_args(self.latency["http_connect"].observe),
            "tls_clienthello": _ignoring_args(self.latency["tls_clienthello"].observe),
        }

    # Policy versions.

    def _installed(self, compiled: CompiledPolicy) -> None:
        path = compiled.loaded.path
        try:
            # A few kilobytes, read once per reload: the same file the audit trail records the sha256 of.
            data = path.read_bytes()
        except OSError:
            data = b""
        self.policy_sha256 = hashlib.sha256(data).hexdigest()
        self.policy_file = path.name
        self.policy_loaded_at = time.time()
        self.policy_installs += 1

    # The server.

    def _start_server(self, listen: str) -> None:
        from gateway.proxy.metrics_collector import MetricsCollector

        host, port = parse_listen(listen)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MetricsCollector(self))
        ProcessCollector(registry=registry)
        try:
            self._server, _ = start_wsgi_server(port, host, registry)
        except OSError as exc:
            raise exceptions.OptionsError(
                f"gateway_metrics_listen {listen}: cannot listen there ({exc.strerror or exc}); is another worker "
                "or program using that port?"
            ) from None
        if not ipaddress.ip_address(host.strip("[]")).is_loopback:
            log.warning("metrics served on %s, beyond this machine: keep it behind a firewall", listen)
        log.info("metrics at http://%s/metrics", listen)

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _ignoring_args(observe: Callable[[int], None]) -> Callable[..., None]:
    def timed(ns: int, *args: Any) -> None:
        observe(ns)

    return timed


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or a bare `PORT` (loopback) -> (host, port); OptionsError if it is neither."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", listen
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError(port)
    except ValueError:
        raise exceptions.OptionsError(
            f"gateway_metrics_listen {listen!r}: give HOST:PORT with an IP address (127.0.0.1:9100) or a port"
        ) from None
    return host, number
