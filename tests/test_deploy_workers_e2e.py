"""Transparent mode with two proxy workers, in network namespaces the test makes: `gateway deploy nftables --workers 2`
loaded in the gateway, twelve devices (addresses) with no proxy settings; each device always reaches the same worker,
both workers get devices, and each filters what it gets. It skips with a clear message where the machine forbids
namespaces."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store.migrate import upgrade
from tests.support.gateway import GATEWAY_SCRIPT, MONDAY_LESSON
from tests.support.mitmdump import Mitmdump
from tests.support.netns import GATEWAY_LAN_IP, ORIGIN_IP, NamespacedOrigin, RoutedNetwork, unavailable
from tests.support.policies import write_policy
from tests.test_deploy_transparent_e2e import RULES, SITES

pytestmark = pytest.mark.e2e

FIRST_PORT = 18080  # inside the gateway's namespace, where nothing else listens
DEVICES = [f"10.10.0.{n}" for n in range(3, 15)]


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RoutedNetwork, list[Path]]]:
    why = unavailable()
    if why:
        pytest.skip(f"transparent-mode test needs network namespaces: {why}")
    folder = tmp_path_factory.mktemp("transparent-workers")
    with RoutedNetwork() as network:
        for address in DEVICES:
            network.run(network.client, "ip", "addr", "add", f"{address}/24", "dev", "c0")
        network.resolve_in_gateway(SITES, ORIGIN_IP)
        origin = NamespacedOrigin(network, folder / "origin-ca")
        policy = write_policy(folder, RULES)
        workers, databases = [], []
        try:
            for n in range(2):
                # A database each, so the test can tell which worker served a device.
                db = folder / f"worker-{n}.db"
                upgrade(f"sqlite:///{db}")
                worker = Mitmdump(
                    [GATEWAY_SCRIPT],
                    {"gateway_policy": policy, "gateway_now": MONDAY_LESSON, "gateway_db": f"sqlite:///{db}",
                     "gateway_spool": folder / "spool", "gateway_worker": str(n),
                     "ssl_verify_upstream_trusted_ca": origin.ca_cert_path, "gateway_reachable_internal": [ORIGIN_IP]},
                    workdir=folder / f"worker-{n}", confdir=folder / "ca", listen_hosts=(GATEWAY_LAN_IP,),
                    extra_args=["--mode", "transparent"], ready_line=r"policy .* loaded",
                )  # fmt: skip
                worker.command[worker.command.index("--listen-port") + 1] = str(FIRST_PORT + n)
                worker.command[:0] = ["ip", "netns", "exec", network.gateway]
                workers.append(worker.start())
                databases.append(db)
            rules = subprocess.run(
                [sys.executable, "-m", "gateway", "deploy", "nftables", "--policy", str(policy), "--proxy-port",
                 str(FIRST_PORT), "--workers", "2"], capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            (folder / "rules.nft").write_text(rules)
            network.run(network.gateway, "nft", "-f", str(folder / "rules.nft"))
            yield network, databases
        finally:
            for worker in workers:
                worker.stop()
            origin.stop()


def curl(network: RoutedNetwork, device: str, url: str) -> tuple[int, str]:
    host = url.split("/")[2]
    done = network.run(network.client, "curl", "-sS", "--noproxy", "*", "--max-time", "30", "--interface", device,
                       "--resolve", f"{host}:80:{ORIGIN_IP}", "-w", "\n%{http_code}", url, check=False)  # fmt: skip
    body, _, code = done.stdout.rpartition("\n")
    return int(code or 0), body + done.stderr


def served_by(databases: list[Path], host: str, wanted: int, timeout: float = 30) -> list[set[str]]:
    """For each worker, the devices it logged a request to `host` for, once `wanted` rows are logged in all."""
    deadline = time.monotonic() + timeout
    while True:
        rows = []
        for db in databases:
            with sqlite3.connect(db) as conn:
                rows.append([r[0] for r in conn.execute("SELECT client_ip FROM access_log WHERE host = ?", (host,))])
        if sum(map(len, rows)) >= wanted or time.monotonic() > deadline:
            assert sum(map(len, rows)) == wanted, rows
            return [set(r) for r in rows]
        time.sleep(0.2)


def test_each_device_stays_on_one_worker_and_both_workers_filter(school) -> None:  # type: ignore[no-untyped-def]
    network, databases = school
    for _ in range(2):
        for device in DEVICES:
            code, body = curl(network, device, "http://www.bbc.co.uk/bitesize")
            assert (code, body) == (200, "origin ok: www.bbc.co.uk/bitesize"), device
    first, second = served_by(databases, "www.bbc.co.uk", 2 * len(DEVICES))
    assert first | second == set(DEVICES) and not first & second, "each device on one worker, both times"
    assert first and second, "the hash spreads the devices over both workers"
    # Each worker filters the devices it gets.
    for device in (min(first), min(second)):
        code, body = curl(network, device, "http://www.facebook.com/")
        assert code == 403 and "Social media is not allowed" in body
    blocked = served_by(databases, "www.facebook.com", 2)
    assert blocked == [{min(first)}, {min(second)}]
