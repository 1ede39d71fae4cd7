"""The metrics' pieces on their own: where the endpoint may listen, how the chain times a hook (a failing part's
time included), where a latency falls among the buckets, and what a scrape reads from the counts."""

from __future__ import annotations

import pytest
from mitmproxy import exceptions
from mitmproxy.proxy import layers  # noqa: F401  (registers the HTTP hooks the chain binds)
from mitmproxy.test import tflow
from prometheus_client import CollectorRegistry, generate_latest

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.proxy.access_log import AccessLog
from gateway.proxy.bans import BanKeeper
from gateway.proxy.chain import AddonChain
from gateway.proxy.flow_state import flow_state
from gateway.proxy.grant_follower import GrantFollower
from gateway.proxy.identity_sources import IdentitySources
from gateway.proxy.metrics import LatencyHistogram, Metrics, parse_listen
from gateway.proxy.metrics_collector import MetricsCollector
from gateway.proxy.policy_source import PolicySource


def make_metrics() -> Metrics:
    policy = PolicySource()
    identities = IdentitySources(policy)
    bans = BanKeeper(identities)
    return Metrics(policy, AccessLog(policy), GrantFollower(policy, bans), bans, identities)


@pytest.mark.parametrize("listen, expected", [
    ("9100", ("127.0.0.1", 9100)),
    ("127.0.0.1:9101", ("127.0.0.1", 9101)),
    ("[::1]:9102", ("::1", 9102)),
    ("0.0.0.0:9103", ("0.0.0.0", 9103)),
])  # fmt: skip
def test_where_the_endpoint_may_listen(listen, expected):
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["localhost:9100", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:", "metrics",
                                    "127.0.0.1:91 00"])  # fmt: skip
def test_anything_else_is_refused_with_what_to_give(listen):
    with pytest.raises(exceptions.OptionsError, match="give HOST:PORT with an IP address"):
        parse_listen(listen)


def test_latency_buckets_are_upper_inclusive_and_overflow_to_inf():
    histogram = LatencyHistogram()
    for ns in (10_000, 10_001, 100_000_000, 150_000_000):
        histogram.observe(ns)
    assert histogram.counts[0] == 1  # 10 µs is in le=1e-05
    assert histogram.counts[1] == 1  # just over it, in le=2e-05
    assert histogram.counts[-2] == 1  # 100 ms in le=0.1
    assert histogram.counts[-1] == 1  # past the last bound: +Inf only
    assert histogram.sum_ns == 10_000 + 10_001 + 100_000_000 + 150_000_000


class Deciding:
    def requestheaders(self, flow):  # type: ignore[no-untyped-def]
        flow_state(flow).decision = Decision(Action.BLOCK, Source.RULE, "r", PeriodKind.LESSON, "example.org",
                                             list="social_media")  # fmt: skip


class Failing:
    def requestheaders(self, flow):  # type: ignore[no-untyped-def]
        raise RuntimeError("a part that breaks")


def test_the_chain_times_each_request_and_counts_its_scheme_even_when_a_part_fails():
    metrics = make_metrics()
    blocked: list[object] = []
    chain = AddonChain(Deciding(), Failing(), timers=metrics.timers(),
                       on_failure=metrics.failures({"requestheaders": blocked.append}))  # fmt: skip
    plain, secure = tflow.tflow(), tflow.tflow()
    secure.request.scheme = "https"
    chain.requestheaders(plain)
    chain.requestheaders(secure)
    assert blocked == [plain, secure]
    assert metrics.fail_closed["requestheaders"] == 2
    assert metrics.requests == {"http": 1, "https": 1, "other": 0}
    assert sum(metrics.latency["requestheaders"].counts) == 2


def test_an_odd_scheme_is_counted_as_other_not_as_a_new_label():
    metrics = make_metrics()
    chain = AddonChain(Deciding(), timers=metrics.timers())
    flow = tflow.tflow()
    flow.request.scheme = "javascript<script>"
    chain.requestheaders(flow)
    assert metrics.requests == {"http": 0, "https": 0, "other": 1}


def test_each_logged_decision_is_counted_once_and_a_scrape_names_categories_only():
    metrics = make_metrics()
    flow = tflow.tflow(resp=True)
    Deciding().requestheaders(flow)
    metrics.response(flow)
    flow_state(flow).logged = True  # the access log, next in the chain, logged it
    metrics.error(flow)  # a late error on the same flow is not a second decision
    unlisted = tflow.tflow(resp=True)
    flow_state(unlisted).decision = Decision(Action.ALLOW, Source.DEFAULT, "r", PeriodKind.LESSON, "example.org")
    metrics.response(unlisted)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(metrics))
    text = generate_latest(registry).decode()
    assert 'gateway_decisions_total{action="block",category="social_media",source="rule",worker="0"} 1.0' in text
    assert 'gateway_decisions_total{action="allow",category="none",source="default",worker="0"} 1.0' in text
    assert "example.org" not in text
