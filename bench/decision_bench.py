"""Benchmark of the whole decision: `decide()` with the demo policy, the UT1 lists and a 6-million-entry list.

    .venv/bin/python bench/decision_bench.py [UT1_DIR_OR_TARBALL] [--entries 6000000] [--lookups 200000]

Imports the UT1 lists (default ../shared/data/ut1) into a temporary folder as `gateway lists import` does, writes
a copy of policies/default.yaml that reads them there, and times `decide()` for a pupil in a lesson over a
realistic host mix; then adds a generated list of N distinct domains to that policy (one more list and rule) and
times it again. The lists benchmark (bench/lists_bench.py) covers the index alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from lists_bench import SEED, generated_domains, host_mix, latency  # noqa: E402

from gateway.decisions.engine import decide  # noqa: E402
from gateway.identity.types import Identity, IdentitySource  # noqa: E402
from gateway.lists.ut1 import import_ut1  # noqa: E402
from gateway.policy.compiled import load_compiled  # noqa: E402

DEFAULT_UT1 = REPO.parent / "shared" / "data" / "ut1"
GOAL_P99_US = 20
PUPIL = Identity(group="pupil", source=IdentitySource.GIVEN, year_group=5)
LESSON = datetime.fromisoformat("2026-09-07T09:30+01:00")
EXTRA_LIST = """
  generated:
    description: generated for the benchmark
    files: [{path}]
"""
EXTRA_RULE = """
  - id: generated-list
    lists: [generated]
    action: block
    reason: Generated benchmark list.
"""


def demo_policy_copy(folder: Path, imports: Path, extra_list: Path | None = None) -> Path:
    text = (REPO / "policies" / "default.yaml").read_text()
    text = text.replace("imports: ../var/lists/ut1", f"imports: {imports}")
    text = text.replace("files: [lists/", f"files: [{REPO / 'policies' / 'lists'}/")
    if extra_list is not None:
        text = text.replace("\nlists:\n", "\nlists:\n" + EXTRA_LIST.format(path=extra_list).lstrip("\n"), 1)
        text = text.replace("\nrules:\n", "\nrules:\n" + EXTRA_RULE.lstrip("\n"), 1)
    path = folder / ("policy-6m.yaml" if extra_list else "policy.yaml")
    path.write_text(text)
    return path


def measure(label: str, policy_path: Path, listed: list[str], lookups: int, rows: list) -> None:
    started = time.perf_counter()
    policy = load_compiled(policy_path)
    load_s = time.perf_counter() - started
    hosts = host_mix(SEED + 7, lookups, listed)

    def decision(host: str) -> bool:
        return decide(policy, PUPIL, host, "/", LESSON).blocked

    figures = latency(decision, hosts)
    rows.append((f"{label}: load policy", f"{load_s:.2f} s", f"{len(policy.domains):,} domain entries"))
    for clock in ("wall", "cpu", "best3"):
        rows.append((
            f"{label}: decide() p50/p99/p999 ({clock})",
            "/".join(f"{figures[f'{clock}_{q}']:.1f}" for q in ("p50", "p99", "p999")) + " us",
            f"goal p99 <= {GOAL_P99_US} us; {len(hosts):,} hosts, {figures['matched']:.0%} blocked",
        ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ut1", nargs="?", default=str(DEFAULT_UT1))
    parser.add_argument("--entries", type=int, default=6_000_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="decision-bench-") as tmp:
        work = Path(tmp)
        imports = work / "ut1"
        report = import_ut1(args.ut1, imports)
        rows.append(("UT1 imported", f"{report.domains:,}", f"domains in {len(report.categories)} categories"))
        listed = []
        for name in ("social_networks", "gambling", "vpn", "redirector", "drogue"):
            if (imports / name / "domains").exists():
                listed += (imports / name / "domains").read_text().split()[:2000]
        measure("demo + UT1", demo_policy_copy(work, imports), listed, args.lookups, rows)

        domains = generated_domains(args.entries, SEED)
        generated = work / "generated.txt"
        generated.write_text("\n".join(domains) + "\n")
        sample = domains[:: max(1, len(domains) // 20_000)]
        del domains
        policy_6m = demo_policy_copy(work, imports, generated)
        load_compiled(policy_6m)  # the first load compiles the list's cache, as `gateway lists import` would
        measure(f"demo + UT1 + {args.entries:,}", policy_6m, listed + sample, args.lookups, rows)

    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'figure':>22}  goal / notes")
    print("-" * (width + 60))
    for measure_name, figure, note in rows:
        print(f"{measure_name:<{width}}  {figure:>22}  {note}")


if __name__ == "__main__":
    main()
