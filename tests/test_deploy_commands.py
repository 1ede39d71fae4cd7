"""`gateway deploy nftables` and `gateway deploy systemd` as an IT technician runs them: the ruleset nft accepts,
with the policy's subnets in the right places, and unit files systemd accepts that run real commands."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.policies import DEMO_POLICY, write_policy

GATEWAY = [sys.executable, "-m", "gateway"]


def gateway(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def rules(*args: str) -> str:
    done = gateway("deploy", "nftables", "--policy", str(DEMO_POLICY), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def nft_accepts(text: str, tmp_path: Path) -> None:
    """`nft -c` parses and checks the ruleset against the kernel without loading it."""
    if shutil.which("nft") is None or os.geteuid() != 0:
        pytest.skip("nft -c needs the nft tool (scripts/bootstrap installs nftables) and root")
    path = tmp_path / "rules.nft"
    path.write_text(text)
    done = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def lines_with(text: str, needle: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if needle in line and not line.strip().startswith("#")]


def test_the_demo_policy_gives_a_ruleset_nft_accepts_with_pupils_failing_closed(tmp_path):
    text = rules("--proxy-port", "8443")
    nft_accepts(text, tmp_path)
    assert text == rules("--proxy-port", "8443")  # the same every time: reviewable, diffable
    # Pupils in the always-redirected set, staff and guests in the set the proxy's unit empties when it stops.
    assert "elements = { 10.10.0.0/16 }" in text.split("set fail_closed_v4")[1].split("}")[0] + "}"
    assert "elements = { 10.20.0.0/16, 10.30.0.0/16 }" in text.split("set fail_open_v4")[1].split("}")[0] + "}"
    # The demo's loopback network never arrives from a VLAN.
    assert "127.0.0.0/8" not in text and "::1" not in text
    assert lines_with(text, "redirect") == [
        "ip saddr @fail_closed_v4 tcp dport { 80, 443 } redirect to :8443",
        "ip6 saddr @fail_closed_v6 tcp dport { 80, 443 } redirect to :8443",
        "ip saddr @fail_open_v4 tcp dport { 80, 443 } redirect to :8443",
        "ip6 saddr @fail_open_v6 tcp dport { 80, 443 } redirect to :8443",
    ]
    assert lines_with(text, "udp dport 443 drop")  # QUIC
    assert lines_with(text, "ip saddr @fail_closed_v4 tcp dport { 80, 443 } drop")
    # The gateway's own addresses first, untouched; no output chain (its own traffic).
    prerouting = text.split("chain prerouting")[1]
    assert lines_with(prerouting, "fib daddr type local accept") and "hook output" not in text
    assert "# Network pupil-wifi (group pupil, fail closed): 10.10.0.0/16" in text


def test_pupils_may_send_nothing_else_but_the_allowed_ports_and_dns_to_the_named_resolvers(tmp_path):
    text = rules("--allow-egress", "udp/123", "--allow-egress", "tcp/22", "--dns-server", "10.0.0.53")
    nft_accepts(text, tmp_path)
    forward = text.split("chain forward")[1]
    assert lines_with(forward, "@fail_closed_v4")[-4:] == [
        "ip saddr @fail_closed_v4 ip daddr { 10.0.0.53/32 } tcp dport 53 accept",
        "ip saddr @fail_closed_v4 tcp dport { 22 } accept",
        "ip saddr @fail_closed_v4 udp dport { 123 } accept",
        "ip saddr @fail_closed_v4 drop",
    ]
    # Staff and guests are not restricted; --open-egress lifts the restriction for pupils too.
    assert not lines_with(forward, "@fail_open_v4 drop")
    assert not lines_with(rules("--open-egress"), "@fail_closed_v4 drop")


def test_interfaces_and_more_fail_closed_groups(tmp_path):
    text = rules("--interface", "vlan10", "--interface", "vlan30", "--fail-closed", "pupil", "--fail-closed", "guest")
    nft_accepts(text, tmp_path)
    assert 'elements = { "vlan10", "vlan30" }' in text
    assert all(line.startswith("iifname @wifi_interfaces ") for line in lines_with(text, "saddr @"))
    assert "elements = { 10.10.0.0/16, 10.30.0.0/16 }" in text.split("set fail_closed_v4")[1].split("}")[0] + "}"
    everyone = rules("--fail-closed", "all")
    assert "elements" not in everyone.split("set fail_open_v4")[1].split("}")[0]


def test_ipv6_subnets_and_one_network_only(tmp_path):
    policy = write_policy(tmp_path, "", {}).read_text().replace("subnets: [10.20.0.0/16]",
                                                                "subnets: [10.20.0.0/16, 'fd00:20::/64']")  # fmt: skip
    (tmp_path / "policy.yaml").write_text(policy)
    done = gateway("deploy", "nftables", "--policy", str(tmp_path / "policy.yaml"), "--network", "staff")
    assert done.returncode == 0, done.stderr
    nft_accepts(done.stdout, tmp_path)
    assert "elements = { fd00:20::/64 }" in done.stdout and "10.10.0.0" not in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-closed", "pupils"], "no group pupils in the policy (its groups: guest, pupil, staff)"),
        (["--network", "nope"], "no client network nope in the policy"),
        (["--interface", 'wlan0" accept'], "is not a network interface name"),
        (["--proxy-port", "0"], "0 is not in the range"),
        (["--allow-egress", "udp/443"], "web ports are the proxy's"),
        (["--allow-egress", "icmp/1"], "is not PROTO/PORT"),
        (["--dns-server", "not-an-address"], "DNS server:"),
    ],
)
def test_bad_choices_are_refused_with_a_clear_error_and_no_ruleset(args, message):
    done = gateway("deploy", "nftables", "--policy", str(DEMO_POLICY), *args)
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""


def test_a_policy_that_does_not_load_is_named_with_its_error(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("school: {name: X}\nnetworks: nope\n")
    done = gateway("deploy", "nftables", "--policy", str(broken))
    assert done.returncode == 1 and "broken.yaml" in done.stderr and done.stdout == ""


def exec_lines(unit: str) -> dict[str, list[list[str]]]:
    found: dict[str, list[list[str]]] = {}
    for line in unit.splitlines():
        key, _, value = line.partition("=")
        if key.startswith("Exec"):
            found.setdefault(key, []).append(shlex.split(value.lstrip("-+")))
    return found


def test_systemd_units_parse_and_run_real_commands(tmp_path):
    units, var = tmp_path / "units", tmp_path / "var"
    nft_file = tmp_path / "rules.nft"
    done = gateway("deploy", "systemd", "--dir", str(units), "--var", str(var), "--public-url",
                   "http://10.10.0.1:8081/", "--nftables", str(nft_file), "--user", "root")  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in units.iterdir())
    assert names == ["school-gateway-console.service", "school-gateway-maintenance.service",
                     "school-gateway-maintenance.timer", "school-gateway-prepare.service",
                     "school-gateway-proxy.service"]  # fmt: skip
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", *map(str, sorted(units.iterdir()))],
                                capture_output=True, text=True, cwd=units)  # fmt: skip
        assert verify.returncode == 0, verify.stderr
    text = {name: (units / name).read_text() for name in names}
    for name in names:
        if name.endswith(".service"):
            unit = text[name]
            for needed in ("User=root", "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=\n",
                           f"ReadWritePaths=-{var}"):  # fmt: skip
                assert needed in unit, (name, needed)
            for commands in exec_lines(unit).values():
                for argv in commands:
                    assert os.access(argv[0], os.X_OK), (name, argv[0])
    assert "Restart=on-failure" in text["school-gateway-proxy.service"]
    assert "OnCalendar=" in text["school-gateway-maintenance.timer"]

    proxy = exec_lines(text["school-gateway-proxy.service"])
    start = proxy["ExecStart"][0]
    assert ["--mode", "transparent@0.0.0.0:8080"] == start[start.index("--mode"):start.index("--mode") + 2]
    assert "gateway_retention_days=0" in start  # the timer purges, once per machine
    assert proxy["ExecStartPost"] == [["/usr/sbin/nft", "-f", str(nft_file)]]
    assert ["/usr/sbin/nft", "flush", "set", "inet", "school_gateway", "fail_open_v4"] in proxy["ExecStopPost"]

    # The prepare and maintenance units' commands do their job on a fresh folder.
    for unit in ("school-gateway-prepare.service", "school-gateway-maintenance.service"):
        argv = exec_lines(text[unit])["ExecStart"][0]
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, (unit, ran.stderr)
    assert (var / "gateway.db").exists() and (var / "portal-link-key").exists() and (var / "console-secret").exists()
    assert "deleted 0 access-log rows older than 90 days" in ran.stdout
    console = exec_lines(text["school-gateway-console.service"])["ExecStart"][0]
    assert subprocess.run([*console, "--help"], capture_output=True, timeout=60).returncode == 0
    assert "--proxy-url" in console and "http://127.0.0.1:3128" in console


def test_systemd_refuses_a_public_url_that_is_not_a_web_address(tmp_path):
    done = gateway("deploy", "systemd", "--dir", str(tmp_path), "--public-url", "10.10.0.1:8081")
    assert done.returncode == 2 and "is not an http:// or https:// address" in done.stderr
    assert not list(tmp_path.iterdir())
