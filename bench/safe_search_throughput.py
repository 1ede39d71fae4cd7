#!/usr/bin/env python3
"""Throughput with safe-search rewriting on against off, in the same run, over HTTP and HTTPS (goal >= 0.98x).

    .venv/bin/python bench/safe_search_throughput.py [--quick] [--target search|other|both] [bench/throughput.py
        options: --duration, --rounds, --connections, --scenarios ...]
    .venv/bin/python bench/safe_search_throughput.py --hooks [--hook-rounds 6] [--hook-requests 10000]
        [--proxy-cpu-us 1000] [--target ...]

Runs bench/throughput.py with two gateway configurations on the demo policy (its own lists, no UT1): ``gateway``,
the policy with safe search, YouTube's restricted mode and the sign-in locks turned off, and ``gateway+extra``, the
demo policy as shipped (all of them on). Both see the same origin and load, alternately, so the printed
``gateway+extra/gateway`` ratio is what rewriting costs:

- ``search``: every request is a Google search (``www.google.co.uk/search?q=...&safe=off``): the query is
  rewritten (``safe=off`` dropped, ``safe=active`` added) on each one;
- ``other``: requests to a site that is neither a search engine nor a sign-in host (``www.bbc.co.uk``), which cost
  the rewriter one dict lookup.

The demo policy's loopback network is the pupil network, so the benchmark's requests are a pupil's.

``--hooks`` measures the same two policies without the network instead (bench/gateway_hooks.py: the gateway's
Master in this process, flows through mitmproxy's dispatch of the four request hooks), alternating off and on for
``--hook-rounds`` rounds, HTTP and HTTPS, for each target. It prints the CPU per request of each and what rewriting
adds, and the throughput ratio that cost implies for a proxy spending ``--proxy-cpu-us`` per request in all (the
``cpu/req`` figure of the throughput run's ``gateway`` column): a reading a busy machine hardly moves, beside the
requests/s ratio it does.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import throughput  # noqa: E402

TARGETS = {
    "search": ("www.google.co.uk", "/search?q=school+trip&hl=en&safe=off"),
    "other": ("www.bbc.co.uk", "/bench"),
}
OFF = """
safe_search:
  default: {search: "off", youtube: "off"}
services: {}
"""


def policies(folder: Path) -> tuple[Path, Path]:
    """(off, on): copies of the demo policy beside its lists, the first with every rewrite turned off."""
    shutil.copytree(REPO_ROOT / "policies", folder / "policies")
    on = folder / "policies" / "default.yaml"
    text = on.read_text()
    # Cut the shipped sections and put the "off" ones in their place.
    for section in ("safe_search", "services"):
        text = re.sub(rf"(?ms)^{section}:\n.*?(?=^\S)", "", text)
    off = folder / "policies" / "safe_search_off.yaml"
    off.write_text(text + OFF)
    return off, on


def hooks(off: Path, on: Path, targets: list[str], rounds: int, count: int, proxy_cpu_us: float, folder: Path) -> int:
    """The in-process reading: µs per request with rewriting off and on, alternated, medians over the rounds."""
    import asyncio
    import statistics

    import gateway_hooks

    db = f"sqlite:///{folder / 'access.db'}"
    throughput.prepare_database(db)
    worst = 1.0
    for target in targets:
        for https in (False, True):
            runs: dict[Path, list[float]] = {off: [], on: []}
            for round_no in range(rounds):
                for policy in (off, on) if round_no % 2 == 0 else (on, off):
                    specs = [f"confdir={folder / 'ca'}", f"gateway_policy={policy}", f"gateway_db={db}",
                             f"gateway_spool={folder / 'spool'}", "termlog_verbosity=error"]  # fmt: skip
                    runs[policy].append(asyncio.run(gateway_hooks.measure(specs, True, https, count, 0, TARGETS[target])))
            cost_off, cost_on = statistics.median(runs[off]), statistics.median(runs[on])
            implied = proxy_cpu_us / (proxy_cpu_us + cost_on - cost_off)
            worst = min(worst, implied)
            print(f"{target:<7} {'https' if https else 'http':<6} off {cost_off:7.1f} µs   on {cost_on:7.1f} µs   "
                  f"rewriting adds {cost_on - cost_off:6.1f} µs   implied on/off {implied:.3f} "
                  f"(of {proxy_cpu_us:.0f} µs per request)", flush=True)  # fmt: skip
    print(f"\ngoal: on/off >= 0.98: {'met' if worst >= 0.98 else 'NOT MET'} (lowest {worst:.3f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    parser.add_argument("--target", choices=[*TARGETS, "both"], default="both")
    parser.add_argument("--hooks", action="store_true", help="measure in this process, without the network")
    parser.add_argument("--hook-rounds", type=int, default=6)
    parser.add_argument("--hook-requests", type=int, default=10000)
    parser.add_argument("--proxy-cpu-us", type=float, default=1000.0)
    args, rest = parser.parse_known_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-safe-search-"))
    off, on = policies(folder)
    targets = list(TARGETS) if args.target == "both" else [args.target]
    if args.hooks:
        try:
            return hooks(off, on, targets, args.hook_rounds, args.hook_requests, args.proxy_cpu_us, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    scenarios = [] if any(a.startswith("--scenarios") for a in rest) else ["--scenarios", "http,https"]
    status = 0
    for target in targets:
        host, path = TARGETS[target]
        print(f"\n=== {target}: {host}{path} — safe search off (gateway) against on (gateway+extra) ===", flush=True)
        status |= throughput.main([
            *rest, *scenarios, "--no-lazy", "--host", host, "--path", path,
            "--gateway-set", f"gateway_policy={off}", "--extra-set", f"gateway_policy={on}",
        ])  # fmt: skip
    print("\ngoal: gateway+extra/gateway >= 0.98 in every scenario (rewriting on against off)")
    shutil.rmtree(folder, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
