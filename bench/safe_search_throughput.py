#!/usr/bin/env python3
"""Throughput with safe-search rewriting on against off, in the same run, over HTTP and HTTPS (goal >= 0.98x).

    .venv/bin/python bench/safe_search_throughput.py [--quick] [--target search|other|both] [bench/throughput.py
        options: --duration, --rounds, --connections, --scenarios ...]

Runs bench/throughput.py with two gateway configurations on the demo policy (its own lists, no UT1): ``gateway``,
the policy with safe search, YouTube's restricted mode and the sign-in locks turned off, and ``gateway+extra``, the
demo policy as shipped (all of them on). Both see the same origin and load, alternately, so the printed
``gateway+extra/gateway`` ratio is what rewriting costs:

- ``search``: every request is a Google search (``www.google.co.uk/search?q=...&safe=off``): the query is
  rewritten (``safe=off`` dropped, ``safe=active`` added) on each one;
- ``other``: requests to a site that is neither a search engine nor a sign-in host (``www.bbc.co.uk``), which cost
  the rewriter one dict lookup.

The demo policy's loopback network is the pupil network, so the benchmark's requests are a pupil's.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    parser.add_argument("--target", choices=[*TARGETS, "both"], default="both")
    args, rest = parser.parse_known_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-safe-search-"))
    off, on = policies(folder)
    scenarios = [] if any(a.startswith("--scenarios") for a in rest) else ["--scenarios", "http,https"]
    status = 0
    for target in TARGETS if args.target == "both" else [args.target]:
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
