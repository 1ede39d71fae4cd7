"""A gateway that reloads its policy all day keeps a flat memory: 200 reloads in a real mitmdump, RSS measured
after a warm-up and at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.store.migrate import upgrade
from tests.support.mitmdump import Mitmdump
from tests.test_policy_reload_e2e import LOADED, demo_copy_with_pupil_device, rss_kib

pytestmark = pytest.mark.e2e

WARM_UP = 20
RELOADS = 200
# Freezing the collector at every reload kept each replaced policy: ~10 MiB over these 180 reloads. Freezing once,
# the growth measured was ~0.4 MiB.
ALLOWED_GROWTH_KIB = 4 * 1024


def test_rss_stays_flat_over_200_reloads(tmp_path: Path) -> None:
    policy = demo_copy_with_pupil_device(tmp_path)
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(db)
    proxy = Mitmdump(
        ["addons/gateway.py"],
        {"gateway_policy": policy, "gateway_db": db, "gateway_spool": tmp_path / "spool",
         "gateway_reload_interval_ms": 20},
        workdir=tmp_path, ready_line=LOADED,
    ).start()  # fmt: skip
    try:
        stamp = policy.stat().st_mtime_ns
        baseline = 0
        for n in range(1, RELOADS + 1):
            mark = proxy.mark()
            stamp += 1_000_000
            os.utime(policy, ns=(stamp, stamp))
            proxy.wait_for_output(LOADED, after=mark)
            if n == WARM_UP:
                baseline = rss_kib(proxy)
        growth = rss_kib(proxy) - baseline
    finally:
        proxy.stop()
    assert growth < ALLOWED_GROWTH_KIB, f"RSS grew {growth} KiB over {RELOADS - WARM_UP} reloads"
