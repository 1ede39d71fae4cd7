"""`gateway deploy nftables --workers N`: the transparent redirect spreads devices over the workers' ports by a hash
of the source address, in a ruleset nft accepts; `gateway deploy systemd --workers N`: a proxy unit per worker."""

from __future__ import annotations

import shutil
import subprocess

from tests.test_deploy_commands import exec_lines, gateway, lines_with, nft_accepts, rules
from tests.support.policies import DEMO_POLICY


def test_workers_get_devices_by_a_hash_of_their_address_in_a_ruleset_nft_accepts(tmp_path):
    text = rules("--proxy-port", "8080", "--workers", "3")
    nft_accepts(text, tmp_path)
    spread = "jhash {} saddr mod 3 map {{ 0 : 8080, 1 : 8081, 2 : 8082 }}"
    assert lines_with(text, "redirect") == [
        f"ip saddr @fail_closed_v4 tcp dport {{ 80, 443 }} redirect to :{spread.format('ip')}",
        f"ip6 saddr @fail_closed_v6 tcp dport {{ 80, 443 }} redirect to :{spread.format('ip6')}",
        f"ip saddr @fail_open_v4 tcp dport {{ 80, 443 }} redirect to :{spread.format('ip')}",
        f"ip6 saddr @fail_open_v6 tcp dport {{ 80, 443 }} redirect to :{spread.format('ip6')}",
    ]
    assert "# Proxy's transparent ports: 8080-8082 (3 workers)." in text
    # Everything else is as for one proxy: pupils' escaped web traffic and QUIC still dropped.
    assert lines_with(text, "ip saddr @fail_closed_v4 tcp dport { 80, 443 } drop")
    assert lines_with(text, "udp dport 443 drop")


def test_one_worker_is_the_plain_redirect(tmp_path):
    assert rules("--workers", "1") == rules()
    assert "jhash" not in rules()


def test_workers_past_the_last_port_are_refused():
    done = gateway("deploy", "nftables", "--policy", str(DEMO_POLICY), "--proxy-port", "65535", "--workers", "2")
    assert done.returncode == 2 and "do not fit in the ports" in done.stderr and done.stdout == ""


def test_systemd_writes_a_proxy_unit_per_worker_on_its_own_ports(tmp_path):
    units, var, nft_file = tmp_path / "units", tmp_path / "var", tmp_path / "rules.nft"
    done = gateway("deploy", "systemd", "--dir", str(units), "--var", str(var), "--public-url",
                   "http://10.10.0.1:8090/", "--console-port", "8090", "--nftables", str(nft_file), "--user", "root",
                   "--workers", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "enable --now school-gateway-proxy-0 school-gateway-proxy-1 school-gateway-console" in done.stderr
    names = sorted(p.name for p in units.iterdir())
    assert names == ["school-gateway-console.service", "school-gateway-maintenance.service",
                     "school-gateway-maintenance.timer", "school-gateway-prepare.service",
                     "school-gateway-proxy-0.service", "school-gateway-proxy-1.service"]  # fmt: skip
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", *map(str, sorted(units.iterdir()))],
                                capture_output=True, text=True, cwd=units)  # fmt: skip
        assert verify.returncode == 0, verify.stderr
    for n in (0, 1):
        unit = (units / f"school-gateway-proxy-{n}.service").read_text()
        start = exec_lines(unit)["ExecStart"][0]
        modes = [start[i + 1] for i, arg in enumerate(start) if arg == "--mode"]
        assert modes == [f"transparent@0.0.0.0:{8080 + n}", f"regular@0.0.0.0:{3128 + n}"]
        assert f"gateway_worker={n}" in start and "gateway_retention_days=0" in start
        assert "Restart=on-failure" in unit
        assert exec_lines(unit)["ExecStartPost"] == [["/usr/sbin/nft", "-f", str(nft_file)]]


def test_systemd_refuses_workers_whose_ports_meet_the_consoles(tmp_path):
    done = gateway("deploy", "systemd", "--dir", str(tmp_path), "--public-url", "http://10.10.0.1:8081/",
                   "--workers", "2")  # fmt: skip
    assert done.returncode == 2 and "overlap each other, the console's port" in done.stderr
    assert not list(tmp_path.iterdir())
