"""`gateway deploy nftables --workers N`: the transparent redirect spreads devices over the workers' ports by a hash
of the source address, in a ruleset nft accepts."""

from __future__ import annotations

from tests.test_deploy_commands import gateway, lines_with, nft_accepts, rules
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
