#!/usr/bin/env python3
"""The gateway's own mitmproxy Master with none of the gateway's parts: what the lean Master costs by itself.

Takes mitmdump's arguments (``--listen-host``, ``--listen-port``, ``--mode``, ``-s``, ``--set``) so that
``tests.support.mitmdump.Mitmdump(program=...)`` can start it. For benchmarks only: it filters nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.proxy.master import run, settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", action="append", default=[])
    parser.add_argument("--listen-host")
    parser.add_argument("--listen-port", type=int)
    parser.add_argument("-s", dest="scripts", action="append", default=[])
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    run(settings(args.mode, args.listen_host, args.listen_port, args.sets, args.scripts), list,
        scripts=bool(args.scripts))  # fmt: skip


if __name__ == "__main__":
    main()
