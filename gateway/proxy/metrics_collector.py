"""What a Prometheus scrape of a proxy worker reads, in the metrics server's thread, never on the event loop.

The counters the hooks keep (`gateway.proxy.metrics.Metrics`) are copied whole (a dict copy is one step the event
loop cannot interleave with); the rest is read from the parts as they stand: the access-log writer's queue and
totals, the spool folders on disk, the running policy, the grants and bans in force, the identity sources.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.proxy.metrics import Metrics

# The category label of a decision that names no list (a rule, the default, a connection check).
NO_CATEGORY = "none"

SPOOL_SUFFIX = ".jsonl"


def _labelled(family: CounterMetricFamily | GaugeMetricFamily, worker: str,
              values: dict[tuple[str, ...], float]) -> CounterMetricFamily | GaugeMetricFamily:  # fmt: skip
    for labels, value in values.items():
        family.add_metric([worker, *labels], value)
    return family


def spool_state(directory: Path | None) -> tuple[int, int, float]:
    """(files, bytes, age in seconds of the oldest) of the batches waiting in a spool folder."""
    if directory is None:
        return 0, 0, 0.0
    files = size = 0
    oldest = None
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0, 0, 0.0
    for entry in entries:
        if not entry.name.endswith(SPOOL_SUFFIX):
            continue
        try:
            st = entry.stat()
        except OSError:  # replayed and removed while we looked
            continue
        files += 1
        size += st.st_size
        oldest = st.st_mtime if oldest is None else min(oldest, st.st_mtime)
    return files, size, (max(0.0, time.time() - oldest) if oldest is not None else 0.0)


class MetricsCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        w = m.worker
        yield _labelled(CounterMetricFamily("gateway_requests", "HTTP requests decided, by scheme.",
                                            labels=["worker", "scheme"]),
                        w, {(scheme,): n for scheme, n in dict(m.requests).items()})  # fmt: skip
        yield _labelled(CounterMetricFamily("gateway_connections", "Client connections accepted.", labels=["worker"]),
                        w, {(): m.connections})  # fmt: skip
        yield _labelled(GaugeMetricFamily("gateway_connections_open", "Client connections open now.",
                                          labels=["worker"]), w, {(): m.open_connections})  # fmt: skip
        yield _labelled(
            CounterMetricFamily("gateway_decisions", "Decisions logged, by action, where in the precedence they came "
                                "from (rule, list, exception, ban, circumvention, content...) and category (the "
                                "list or content category; none for a rule, the default or a connection check).",
                                labels=["worker", "action", "source", "category"]),
            w, {(action.value, source.value, category or NO_CATEGORY): n
                for (action, source, category), n in dict(m.decisions).items()},
        )  # fmt: skip
        yield _labelled(CounterMetricFamily("gateway_fail_closed", "Times a part raised while deciding and the "
                                            "gateway blocked rather than let through, by hook.",
                                            labels=["worker", "hook"]),
                        w, {(hook,): n for hook, n in dict(m.fail_closed).items()})  # fmt: skip
        yield self._latency()
        yield from self._log()
        yield from self._policy()
        yield from self._in_force()
        yield from self._identity()

    def _latency(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "gateway_decision_seconds", "Time the gateway's parts spend in the hooks that decide: a request's "
            "headers, a CONNECT, a TLS ClientHello.", labels=["worker", "hook"],
        )  # fmt: skip
        for hook, histogram in self.metrics.latency.items():
            counts = list(histogram.counts)
            running = 0
            buckets = []
            for bound, count in zip((*histogram.bounds, None), counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound is None else repr(bound / 1e9), running))
            family.add_metric([self.metrics.worker, hook], buckets, histogram.sum_ns / 1e9)
        return family

    def _log(self) -> Iterator[Metric]:
        w = self.metrics.worker
        writer = self.metrics.access_log.writer
        queued = writer.backlog if writer is not None else 0
        yield _labelled(GaugeMetricFamily("gateway_log_queue_rows", "Access-log rows queued in memory for the writer.",
                                          labels=["worker"]), w, {(): queued})  # fmt: skip
        totals = {
            ("written",): writer.written if writer else 0,
            ("spooled",): writer.spooled if writer else 0,
            ("spilled",): writer.spilled if writer else 0,
            ("rejected",): writer.rejected if writer else 0,
        }
        yield _labelled(CounterMetricFamily("gateway_log_rows", "Access-log rows by what became of them: written to "
                                            "the database, spooled or spilled to disk while it was away or slow, "
                                            "refused by it.", labels=["worker", "outcome"]), w, totals)  # fmt: skip
        folders = {
            "access": writer.spool.directory if writer else None,
            "rejected": writer.rejects.directory if writer else None,
            "audit": self.metrics.audit_spool,
        }
        files = GaugeMetricFamily("gateway_spool_files", "Batches waiting on disk: access-log rows the database "
                                  "could not take yet, rows it refused, and the audit outbox (the whole folder, which "
                                  "the workers of a machine share: aggregate with max).",
                                  labels=["worker", "kind"])  # fmt: skip
        size = GaugeMetricFamily("gateway_spool_bytes", "Bytes of those batches.", labels=["worker", "kind"])
        oldest = GaugeMetricFamily("gateway_spool_oldest_age_seconds", "Age of the oldest batch waiting (0: none).",
                                   labels=["worker", "kind"])  # fmt: skip
        for kind, folder in folders.items():
            n, b, age = spool_state(folder)
            files.add_metric([w, kind], n)
            size.add_metric([w, kind], b)
            oldest.add_metric([w, kind], age)
        yield files
        yield size
        yield oldest

    def _policy(self) -> Iterator[Metric]:
        m = self.metrics
        info = InfoMetricFamily("gateway_policy", "The policy file running (its sha256, as the audit trail records).",
                                labels=["worker"])  # fmt: skip
        info.add_metric([m.worker], {"file": m.policy_file, "sha256": m.policy_sha256})
        yield info
        yield _labelled(GaugeMetricFamily("gateway_policy_loaded_timestamp_seconds", "When the running policy was "
                                          "installed (Unix time).", labels=["worker"]),
                        m.worker, {(): m.policy_loaded_at})  # fmt: skip
        yield _labelled(CounterMetricFamily("gateway_policy_loads", "Policies installed, the first one included.",
                                            labels=["worker"]), m.worker, {(): m.policy_installs})  # fmt: skip
        yield _labelled(CounterMetricFamily("gateway_policy_reload_failures", "Changed policies refused (the "
                                            "running one stayed in force).", labels=["worker"]),
                        m.worker, {(): m.policy.refused_reloads})  # fmt: skip

    def _in_force(self) -> Iterator[Metric]:
        m = self.metrics
        grants = m.grants.exceptions_for(m.policy.current).grants if hasattr(m.policy, "current") else ()
        bans = m.bans.current
        yield _labelled(GaugeMetricFamily("gateway_grants_in_force", "Unblocks and permissions this proxy applies.",
                                          labels=["worker"]), m.worker, {(): len(grants)})  # fmt: skip
        yield _labelled(GaugeMetricFamily("gateway_bans_in_force", "Supervised-only bans this proxy applies.",
                                          labels=["worker"]), m.worker, {(): len(bans.bans) if bans else 0})  # fmt: skip

    def _identity(self) -> Iterator[Metric]:
        m = self.metrics
        live = m.identity_sources.live
        yield _labelled(GaugeMetricFamily("gateway_identity_store_up", "1 while the roster, devices and sign-in "
                                          "sessions are read from the store; 0 while clients are identified by "
                                          "network only.", labels=["worker"]),
                        m.worker, {(): 1 if live is not None else 0})  # fmt: skip
        counts = GaugeMetricFamily("gateway_identity_known", "People, devices and live sign-in sessions the identity "
                                   "sources hold.", labels=["worker", "kind"])  # fmt: skip
        if live is not None:
            resolver = live.resolver
            counts.add_metric([m.worker, "people"], len(resolver.directory.people))
            counts.add_metric([m.worker, "devices"], len(resolver.directory.devices_by_mac))
            counts.add_metric([m.worker, "sessions"], sum(len(b) for b in list(resolver.bindings.values())))
        yield counts
