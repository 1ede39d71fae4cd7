"""Each pure detector on its own: what it catches, in the spellings a pupil tries, and what it must leave alone."""

from __future__ import annotations

import base64
import ipaddress
import struct

import pytest

from gateway.circumvention.addresses import literal_address
from gateway.circumvention.burst import BurstCounter
from gateway.circumvention.detectors import (
    connect_detection,
    hello_detection,
    request_detection,
    tunnel_detection,
    workaround_detection,
)
from gateway.circumvention.doh import doh_shape, is_dns_query
from gateway.circumvention.fronting import fronted
from gateway.circumvention.incident import Confidence, Technique
from gateway.circumvention.sites import site_of
from gateway.circumvention.tunnel_bytes import escaped, looks_like
from gateway.circumvention.user_agents import BUILT_IN, BadFragmentFile, UserAgentMatcher, read_fragments
from tests.circumvention.wire import dns_query
from tests.support.policies import compile_demo

RULES = compile_demo().circumvention
assert RULES is not None


def nothing_allowed(address, port):  # type: ignore[no-untyped-def]
    return False


# -- DNS over HTTPS -------------------------------------------------------------------------------------------
def test_doh_is_known_by_its_media_type_in_either_direction():
    assert doh_shape("POST", "/anything", "application/dns-message", "").detector == "doh-content-type"
    assert doh_shape("GET", "/q", "", "application/dns-message").detector == "doh-accept"
    assert doh_shape("GET", "/x?name=a.com", "", "application/dns-json").detector == "doh-json"


def test_a_get_query_is_read_and_must_be_a_dns_question():
    wire = base64.urlsafe_b64encode(dns_query("www.facebook.com")).rstrip(b"=").decode()
    found = doh_shape("GET", f"/some/path?dns={wire}", "", "*/*")
    assert found is not None and found.detector == "doh-get-query" and found.certain
    # A `dns=` parameter that is not a DNS query (a tracking value, a word) is not DoH.
    assert doh_shape("GET", "/search?dns=settings", "", "*/*") is None
    assert not is_dns_query(base64.urlsafe_b64encode(b"x" * 40).decode())
    # A DNS *answer* (QR set) is not a query.
    answer = bytearray(dns_query("a.example"))
    answer[2] |= 0x80
    assert not is_dns_query(base64.urlsafe_b64encode(bytes(answer)).decode())


@pytest.mark.parametrize("path", ["/resolve?name=www.tiktok.com&type=A", "/dns-query?name=example.com&type=AAAA",
                                  "/query?ct=application/dns-json&name=x.com"])
def test_json_doh_apis_are_caught_to_any_host(path):
    assert doh_shape("GET", path, "", "*/*") is not None


@pytest.mark.parametrize("path", ["/resolve", "/api/resolve?id=3", "/resolve?name=bob", "/wiki/DNS_over_HTTPS",
                                  "/search?q=dns-query", "/dns-queryable"])
def test_pages_about_dns_are_not_doh(path):
    assert doh_shape("GET", path, "", "text/html") is None


# -- bare addresses ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("written, form", [
    ("93.184.216.34", "dotted"), ("1572395042", "decimal"), ("0x5db8d822", "hex"), ("0x5d.0xb8.0xd8.0x22", "hex"),
    ("0135.0270.0330.042", "octal"), ("93.184.55330", "short"), ("93.184.216.34:8080", "dotted"),
    ("[::ffff:93.184.216.34]", "ipv4-mapped"), ("[::ffff:5db8:d822]", "ipv4-mapped"), ("93.184.216.34.", "dotted"),
])  # fmt: skip
def test_every_spelling_of_an_address_is_read_as_that_address(written, form):
    literal = literal_address(written)
    assert literal is not None and literal.address == ipaddress.ip_address("93.184.216.34") and literal.form == form


def test_ipv6_and_names():
    assert literal_address("[2001:db8::1]:443").form == "ipv6"
    for name in ("www.bbc.co.uk", "1password.com", "123.example", "x1.y2", "", "www.bbc.co.uk.:443", "cafe.de"):
        assert literal_address(name) is None
    assert literal_address("0X5DB8D822").form == "hex"


def test_obfuscated_spellings_are_high_confidence_and_carry_what_was_written():
    found = connect_detection(RULES, group="pupil", target="1572395042:443", port=443, allowed=nothing_allowed)
    assert found.technique is Technique.IP_LITERAL and found.confidence is Confidence.HIGH
    assert found.extra == {"written": "1572395042:443", "address": "93.184.216.34", "form": "decimal"}
    plain = connect_detection(RULES, group="pupil", target="93.184.216.34:443", port=443, allowed=nothing_allowed)
    assert plain.confidence is Confidence.MEDIUM


def test_addresses_are_for_the_policys_groups_only_and_allowed_ones_pass():
    assert connect_detection(RULES, group="staff", target="93.184.216.34", port=443, allowed=nothing_allowed) is None
    assert connect_detection(RULES, group="pupil", target="93.184.216.34", port=443,
                             allowed=lambda a, p: str(a) == "93.184.216.34") is None  # fmt: skip


# -- TLS hellos ----------------------------------------------------------------------------------------------
def test_tls_without_a_name_to_a_named_target_is_detected_for_everyone():
    for group in ("pupil", "staff"):
        found = hello_detection(RULES, group=group, target="www.bbc.co.uk", port=443, sni=None, allowed=nothing_allowed)
        assert found.technique is Technique.NO_SNI and found.detector == "tls-no-sni"


def test_tls_without_a_name_to_an_address_follows_the_address_rule():
    pupil = hello_detection(RULES, group="pupil", target="93.184.216.34", port=443, sni=None, allowed=nothing_allowed)
    assert pupil.technique is Technique.NO_SNI and pupil.detector == "tls-no-sni-address"
    assert hello_detection(RULES, group="staff", target="93.184.216.34", port=443, sni=None,
                           allowed=nothing_allowed) is None  # fmt: skip


def test_an_address_as_the_tls_name_is_a_bare_address():
    found = hello_detection(RULES, group="pupil", target="93.184.216.34", port=443, sni="93.184.216.34",
                            allowed=nothing_allowed)  # fmt: skip
    assert found.technique is Technique.IP_LITERAL and found.detector == "tls-sni-address"


def test_a_tls_name_for_another_site_than_the_connect_target_is_fronting():
    found = hello_detection(RULES, group="staff", target="www.tiktok.com", port=443, sni="www.bbc.co.uk",
                            allowed=nothing_allowed)  # fmt: skip
    assert found.technique is Technique.DOMAIN_FRONTING and found.sni == "www.bbc.co.uk"
    # One site's names agree; an address target (transparent, SOCKS by address) names no site.
    assert hello_detection(RULES, group="staff", target="www.bbc.co.uk", port=443, sni="static.bbc.co.uk",
                           allowed=nothing_allowed) is None  # fmt: skip
    assert hello_detection(RULES, group="staff", target="93.184.216.34", port=443, sni="www.bbc.co.uk",
                           allowed=nothing_allowed) is None  # fmt: skip


def test_fronting_and_sites():
    assert fronted("www.bbc.co.uk", "www.tiktok.com")
    assert not fronted("www.bbc.co.uk", "bbc.co.uk")
    assert not fronted("fonts.googleapis.com", "fonts.googleapis.com")
    assert fronted("a.school.sch.uk", "b.other.sch.uk")
    assert site_of("cdn1.proxy.example.com") == "example.com" and site_of("www.gov.uk") == "www.gov.uk"


# -- tunnels -------------------------------------------------------------------------------------------------
def test_tunnel_bytes_are_kept_escaped_with_a_guess_at_the_protocol():
    found = tunnel_detection(target="www.bbc.co.uk", sni=None, port=443, data=b"SSH-2.0-OpenSSH_9.6\r\n\x00<b>")
    assert found.technique is Technique.NON_TLS_TUNNEL and found.confidence is Confidence.HIGH
    assert found.first_bytes == "SSH-2.0-OpenSSH_9.6\\x0d\\x0a\\x00<b>" and found.extra["looks_like"] == "ssh"
    openvpn = struct.pack(">HB", 14, 0x38) + bytes(13)
    assert looks_like(openvpn) == "openvpn"
    assert looks_like(b"\x05\x01\x00") == "socks5"
    assert escaped(b"\\" + b"a" * 100).startswith("\\x5ca") and escaped(b"a" * 100).endswith("…")


# -- user agents ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("agent", ["NordVPN/6.14.2 (Windows NT 10.0)", "Psiphon3/174 Android", "okhttp/4.9 ProtonVPN/4.2",
                                   "WireGuard/1.0.20220627 (Android)", "Mozilla/5.0 TunnelBear/4.5"])
def test_vpn_clients_are_known_by_their_user_agent(agent):
    found = request_detection(RULES, group="staff", method="GET", url="https://api.example/", asked=["api.example"],
                              port=443, path="/", content_type="", accept="*/*", user_agent=agent, sni="api.example",
                              host="api.example", host_header="api.example", allowed=nothing_allowed)  # fmt: skip
    assert found is not None and found.technique is Technique.VPN_CLIENT and found.user_agent == agent


def test_the_shipped_fragment_file_reads_and_a_short_fragment_is_refused(tmp_path):
    assert "nordvpn" in read_fragments(BUILT_IN)
    bad = tmp_path / "ua.txt"
    bad.write_text("# ok\nvpn\n")
    with pytest.raises(BadFragmentFile, match="line 2"):
        read_fragments(bad)
    matcher = UserAgentMatcher(["psiphon"])
    assert matcher.match("Psiphon/3") == "psiphon" and matcher.match("Psiphon/3") == "psiphon"
    assert matcher.match("Mozilla/5.0") is None and UserAgentMatcher([]).match("Psiphon") is None


# -- workaround lists and bursts -----------------------------------------------------------------------------
def test_a_block_on_a_workaround_list_is_an_attempt_and_other_lists_are_not():
    found = workaround_detection(RULES, listed="proxies_vpn_doh", host="nordvpn.com", url="https://nordvpn.com/",
                                 user_agent="Mozilla/5.0")  # fmt: skip
    assert found.technique is Technique.WORKAROUND_SITE and found.extra == {"list": "proxies_vpn_doh"}
    assert workaround_detection(RULES, listed="adult", host="x", url=None, user_agent="") is None
    assert workaround_detection(RULES, listed=None, host="x", url=None, user_agent="") is None


def test_a_burst_counts_distinct_sites_in_the_window_once():
    counter = BurstCounter(attempts=3, seconds=120)
    assert counter.add("amy", "a.example", 0) is None
    assert counter.add("amy", "a.example", 1) is None  # the same site again
    assert counter.add("bob", "b.example", 2) is None  # someone else
    assert counter.add("amy", "b.example", 3) is None
    assert counter.add("amy", "c.example", 4) == ["a.example", "b.example", "c.example"]
    # Reported once: the window starts again.
    assert counter.add("amy", "d.example", 5) is None
    # Attempts older than the window drop out.
    slow = BurstCounter(attempts=2, seconds=60)
    assert slow.add("amy", "a.example", 0) is None
    assert slow.add("amy", "b.example", 61) is None


def test_the_row_value_says_when_the_policy_bans_at_once():
    from dataclasses import replace

    found = workaround_detection(RULES, listed="proxies_vpn_doh", host="h", url=None, user_agent="")
    assert "auto_ban" not in RULES.row_value(found)
    banning = replace(RULES, auto_ban=frozenset({Technique.WORKAROUND_SITE}))
    value = banning.row_value(found)
    assert value["auto_ban"] is True and value["ban_days"] == 14 and value["technique"] == "workaround_site"
