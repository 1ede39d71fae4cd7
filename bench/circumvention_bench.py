"""Benchmark of the circumvention detectors on the hot path: what every request pays when nothing is detected.

    .venv/bin/python bench/circumvention_bench.py [--rounds 2000]

Times `request_detection` (DoH shapes, VPN user agents, bare addresses, fronting) and `hello_detection` over the
recorded normal browsing session (tests/fixtures/circumvention/browsing_session.json, 38 requests from Chrome,
Edge, Safari on iPad and system agents), for a pupil, with the demo policy; and `decide()` over the same hosts, for
scale, in the same run (a shared machine's load moves both alike). Goal: the detectors cost under half of the
decision they follow (p50).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gateway.circumvention.detectors import hello_detection, request_detection  # noqa: E402
from gateway.decisions.engine import decide  # noqa: E402
from gateway.identity.types import Identity, IdentitySource  # noqa: E402
from gateway.lists.hosts import normalise_host  # noqa: E402
from gateway.policy.compiled import load_compiled  # noqa: E402

SESSION = REPO / "tests" / "fixtures" / "circumvention" / "browsing_session.json"
GOAL_RATIO = 0.5
PUPIL = Identity(group="pupil", source=IdentitySource.GIVEN, year_group=5)
LESSON = datetime.fromisoformat("2026-09-07T09:30+01:00")


def prepared(requests: list[dict]) -> list[dict]:
    out = []
    for request in requests:
        url = urlsplit(request["url"])
        headers = {k.lower(): v for k, v in request["headers"].items()}
        host = normalise_host(url.netloc)
        out.append({"method": request["method"], "url": request["url"], "asked": [url.netloc], "port": url.port or 443,
                    "path": url.path + (f"?{url.query}" if url.query else ""),
                    "content_type": headers.get("content-type", ""), "accept": headers.get("accept", ""),
                    "user_agent": headers.get("user-agent", ""), "sni": host if url.scheme == "https" else None,
                    "host": host, "host_header": host})  # fmt: skip
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    compiled = load_compiled(REPO / "policies" / "default.yaml")
    rules = compiled.circumvention
    requests = prepared(json.loads(SESSION.read_text())["requests"])
    refuse = lambda address, port: False  # noqa: E731
    detect: list[float] = []
    decided: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(args.rounds):
        for r in requests:
            start = clock()
            request_detection(rules, group="pupil", allowed=refuse, **r)
            if r["sni"]:
                hello_detection(rules, group="pupil", target=r["host"], port=443, sni=r["sni"], allowed=refuse)
            middle = clock()
            decide(compiled, PUPIL, r["host"], r["path"], LESSON)
            end = clock()
            detect.append((middle - start) / 1000)
            decided.append((end - middle) / 1000)
    d50, d99 = percentiles(detect)
    e50, e99 = percentiles(decided)
    ratio = d50 / e50
    print(f"detectors per request (request + TLS hello): p50 {d50:.2f} µs, p99 {d99:.2f} µs")
    print(f"decide() on the same requests:               p50 {e50:.2f} µs, p99 {e99:.2f} µs")
    print(f"detectors / decide() at p50: {ratio:.2f} (goal < {GOAL_RATIO}); {len(detect)} samples; "
          f"{'goal met' if ratio < GOAL_RATIO else 'GOAL NOT MET'}")


if __name__ == "__main__":
    main()
