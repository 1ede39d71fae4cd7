#!/usr/bin/env python3
"""What the Prometheus metrics cost a proxy worker per request: measured directly, then as throughput.

    .venv/bin/python bench/metrics_cost.py [--direct-rounds 9] [--direct-calls 200000] [--no-throughput]
        [throughput.py options: --rounds 3 --duration 4 ...]

1. In this process, on a real mitmproxy flow: the addon chain's `requestheaders` dispatch with and without the
   metrics' timer (two clock reads, a histogram bucket, the request counted by scheme), and the decision count the
   metrics part makes at each response. Interleaved rounds, median nanoseconds per request, side by side.
2. Unless --no-throughput: bench/throughput.py in one run with three proxies on the same load: `gateway` (metrics
   counting and timing, endpoint off), `gateway+extra` (the same with the endpoint listening, idle between
   scrapes), `variant` (bench/gateway_without_metrics.py: no counting, no timing). Any further arguments go to
   throughput.py (default here: --no-lazy --scenarios http,https).

Goal: the metrics cost under 1 % of the proxy's CPU per request (gateway/variant >= 0.99; the per-request figure
of part 1 set against the proxy CPU µs per request that part 2 prints). On a shared machine compare ratios from
one run only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from mitmproxy.proxy import layers  # noqa: E402, F401  (registers the HTTP hooks the chain binds)
from mitmproxy.test import tflow  # noqa: E402

from gateway.decisions.types import Action, Decision, PeriodKind, Source  # noqa: E402
from gateway.proxy.access_log import AccessLog  # noqa: E402
from gateway.proxy.bans import BanKeeper  # noqa: E402
from gateway.proxy.chain import AddonChain  # noqa: E402
from gateway.proxy.flow_state import flow_state  # noqa: E402
from gateway.proxy.grant_follower import GrantFollower  # noqa: E402
from gateway.proxy.identity_sources import IdentitySources  # noqa: E402
from gateway.proxy.metrics import Metrics  # noqa: E402
from gateway.proxy.policy_source import PolicySource  # noqa: E402
from tests.support.ports import free_port  # noqa: E402


class Deciding:
    """Stands for the deciding parts: one cheap hook, so the chain's own overhead is what differs."""

    def requestheaders(self, flow: object) -> None:
        flow_state(flow).instant = None


def metrics() -> Metrics:
    policy = PolicySource()
    identities = IdentitySources(policy)
    bans = BanKeeper(identities)
    return Metrics(policy, AccessLog(policy), GrantFollower(policy, bans), bans, identities)


def per_call_ns(call, flow, calls: int) -> float:  # type: ignore[no-untyped-def]
    # This thread's CPU time, not the wall clock: on a loaded machine the time spent descheduled would swamp it.
    clock = time.thread_time_ns
    start = clock()
    for _ in range(calls):
        call(flow)
    return (clock() - start) / calls


def direct(rounds: int, calls: int) -> None:
    m = metrics()
    plain = AddonChain(Deciding(), Deciding())
    timed = AddonChain(Deciding(), Deciding(), timers=m.timers())
    flow = tflow.tflow(resp=True)
    state = flow_state(flow)
    state.decision = Decision(Action.BLOCK, Source.RULE, "bench", PeriodKind.LESSON, "example.org",
                              rule="r", list="social_media")  # fmt: skip

    def count(f: object) -> None:
        state.logged = False
        m.response(f)  # type: ignore[arg-type]

    def no_count(f: object) -> None:
        state.logged = False

    figures: dict[str, list[float]] = {"chain": [], "chain+timer": [], "response": [], "response+count": []}
    for _ in range(rounds):
        figures["chain"].append(per_call_ns(plain.requestheaders, flow, calls))
        figures["chain+timer"].append(per_call_ns(timed.requestheaders, flow, calls))
        figures["response"].append(per_call_ns(no_count, flow, calls))
        figures["response+count"].append(per_call_ns(count, flow, calls))
    median = {name: statistics.median(values) for name, values in figures.items()}
    timer = median["chain+timer"] - median["chain"]
    counting = median["response+count"] - median["response"]
    print(f"Direct CPU cost per request, median of {rounds} interleaved rounds of {calls:,} calls (ns of CPU):")
    for name, value in median.items():
        print(f"  {name:<16} {value:8.0f}")
    print(f"  => timing the decision and counting the request: {timer:.0f} ns; counting the decision: "
          f"{counting:.0f} ns; together {timer + counting:.0f} ns ({(timer + counting) / 1000:.2f} µs) per request")
    print("  (set against the proxy CPU µs per request below: under 1 % is the goal)\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Not --rounds: that one goes to throughput.py.
    parser.add_argument("--direct-rounds", type=int, default=9, help="rounds of the direct measurement (default 9)")
    parser.add_argument("--direct-calls", type=int, default=200_000, help="calls per round (default 200,000)")
    parser.add_argument("--no-throughput", action="store_true", help="only the direct measurement")
    args, rest = parser.parse_known_args(argv)
    direct(args.direct_rounds, args.direct_calls)
    if args.no_throughput:
        return 0
    import throughput

    passed = rest or ["--no-lazy", "--scenarios", "http,https"]
    return throughput.main([
        *passed, "--variant-script", "bench/gateway_without_metrics.py",
        "--extra-set", f"gateway_metrics_listen=127.0.0.1:{free_port()}",
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
