"""DHCP lease files from dnsmasq and ISC dhcpd, garbage lines, and a file changing under a follower."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.identity.leases import LeaseFollower, parse_dnsmasq, parse_isc, read_lease_file

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
LATER = int(NOW.timestamp()) + 3600


def test_dnsmasq_with_garbage_lines() -> None:
    text = (
        f"{LATER} aa:bb:cc:00:00:07 10.10.3.7 iPad-3B-07 01:aa:bb:cc:00:00:07\n"
        "this is not a lease\n"
        f"{LATER} not-a-mac 10.10.3.8 x *\n"
        f"{LATER} 12345 fd00::5 host 00:01:00:01\n"
        "duid 00:01:00:01:2a:2b\n"
        f"0 AA:BB:CC:00:00:08 10.10.3.9 * *\n"
        "\n"
    )
    parsed = parse_dnsmasq(text)
    assert set(parsed.leases) == {"10.10.3.7", "10.10.3.9"}
    assert parsed.leases["10.10.3.7"].hostname == "iPad-3B-07"
    assert parsed.leases["10.10.3.9"].expires is None and parsed.leases["10.10.3.9"].mac == "aa:bb:cc:00:00:08"
    assert [n for n, _ in parsed.skipped] == [2, 3]


def test_isc_journal_last_block_wins_and_released_leases_drop() -> None:
    text = """# The format of this file is documented in the dhcpd.leases(5) manual page.
authoring-byte-order little-endian;
lease 10.10.3.7 {
  starts 4 2026/11/26 09:00:00;
  ends 4 2026/11/26 11:00:00;
  binding state active;
  next binding state free;
  hardware ethernet aa:bb:cc:00:00:01;
  client-hostname "old";
}
lease 10.10.3.7 {
  starts 4 2026/11/26 09:30:00;
  ends 4 2026/11/26 11:30:00;
  binding state active;
  hardware ethernet aa:bb:cc:00:00:02;
  uid "\\001\\252";
  client-hostname "iPad-3B-07";
}
lease 10.10.3.8 {
  ends epoch 1700000000;
  binding state active;
  hardware ethernet aa:bb:cc:00:00:03;
}
lease 10.10.3.8 {
  binding state free;
  hardware ethernet aa:bb:cc:00:00:03;
}
&&& garbage
lease 10.10.3.9 {
  ends never;
  hardware ethernet aa:bb:cc:00:00:09;
}
"""
    parsed = parse_isc(text)
    assert set(parsed.leases) == {"10.10.3.7", "10.10.3.9"}
    lease = parsed.leases["10.10.3.7"]
    assert (lease.mac, lease.hostname) == ("aa:bb:cc:00:00:02", "iPad-3B-07")
    assert lease.expires == datetime(2026, 11, 26, 11, 30, tzinfo=UTC)
    assert parsed.leases["10.10.3.9"].active(NOW)
    assert [n for n, _ in parsed.skipped] == [28]


def test_format_detected(tmp_path: Path) -> None:
    p = tmp_path / "dhcpd.leases"
    p.write_text("lease 10.0.0.5 {\n  ends never;\n  hardware ethernet 00:11:22:33:44:55;\n}\n")
    assert read_lease_file(p).leases["10.0.0.5"].mac == "00:11:22:33:44:55"


def test_follower_sees_the_file_change_and_expired_leases_lapse(tmp_path: Path) -> None:
    path = tmp_path / "dnsmasq.leases"
    follower = LeaseFollower(path, interval=0.05)
    follower.start()
    try:
        assert follower.lookup("10.10.3.7", NOW) is None
        soon = int(time.time()) + 3600
        tmp = tmp_path / "new"
        tmp.write_text(f"{soon} aa:bb:cc:00:00:07 10.10.3.7 ipad *\n")
        os.replace(tmp, path)
        deadline = time.monotonic() + 5
        now = datetime.now(UTC)
        while follower.lookup("10.10.3.7", now) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert follower.lookup("10.10.3.7", now).mac == "aa:bb:cc:00:00:07"
        # The lease moves to another MAC.
        tmp.write_text(f"{soon} aa:bb:cc:00:00:99 10.10.3.7 phone *\ngarbage\n")
        os.replace(tmp, path)
        while follower.lookup("10.10.3.7", now).mac != "aa:bb:cc:00:00:99" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert follower.lookup("10.10.3.7", now).mac == "aa:bb:cc:00:00:99"
        assert follower.skipped == [(2, "garbage")]
        past = int(time.time()) - 10
        tmp.write_text(f"{past} aa:bb:cc:00:00:99 10.10.3.7 phone *\n")
        os.replace(tmp, path)
        while follower.table["10.10.3.7"].expires.timestamp() != past and time.monotonic() < deadline:
            time.sleep(0.02)
        assert follower.lookup("10.10.3.7", datetime.now(UTC)) is None
    finally:
        follower.stop()


HUGE = "99999999999999999999"


def test_an_expiry_no_clock_can_hold_skips_that_line_only() -> None:
    text = (
        f"{HUGE} aa:bb:cc:00:00:01 10.10.3.1 bad *\n"
        f"{LATER} aa:bb:cc:00:00:02 10.10.3.2 good *\n"
        f"999999999999 aa:bb:cc:00:00:03 10.10.3.3 year-30000 *\n"
        f"-5 aa:bb:cc:00:00:04 10.10.3.4 negative *\n"
        f"{'9' * 5000} aa:bb:cc:00:00:05 10.10.3.5 long *\n"
    )
    parsed = parse_dnsmasq(text)
    assert set(parsed.leases) == {"10.10.3.2"}
    assert [n for n, _ in parsed.skipped] == [1, 3, 4, 5]


def test_isc_block_with_an_impossible_epoch_is_skipped_and_the_rest_kept() -> None:
    text = f"""lease 10.10.3.1 {{
  ends epoch {HUGE};
  binding state active;
  hardware ethernet aa:bb:cc:00:00:01;
}}
lease 10.10.3.2 {{
  ends epoch {LATER};
  binding state active;
  hardware ethernet aa:bb:cc:00:00:02;
}}
lease 10.10.3.3 {{
  ends 4 99999/11/26 11:00:00;
  hardware ethernet aa:bb:cc:00:00:03;
}}
"""
    parsed = parse_isc(text)
    assert set(parsed.leases) == {"10.10.3.2"}
    assert [n for n, _ in parsed.skipped] == [1, 11]


def test_a_re_leased_address_moves_even_when_the_new_file_has_a_bad_line(tmp_path: Path, caplog) -> None:
    """The address was Amy's iPad; the DHCP server re-leases it to another device in a file that also holds a
    line no clock can hold. The new holder must be seen, and the bad line reported once, naming file and line."""
    path = tmp_path / "dnsmasq.leases"
    soon = int(time.time()) + 3600
    path.write_text(f"{soon} aa:bb:cc:00:00:07 10.10.3.7 amys-ipad *\n")
    follower = LeaseFollower(path)
    follower.poll()
    assert follower.lookup("10.10.3.7", datetime.now(UTC)).mac == "aa:bb:cc:00:00:07"
    tmp = tmp_path / "new"
    tmp.write_text(f"{HUGE} aa:bb:cc:00:00:55 10.10.3.5 broken *\n{soon} aa:bb:cc:00:00:99 10.10.3.7 bens-phone *\n")
    os.replace(tmp, path)
    with caplog.at_level("WARNING", logger="gateway.identity.leases"):
        assert follower.poll()
        assert not follower.poll(), "an unchanged file is not read (or reported) again"
    assert follower.lookup("10.10.3.7", datetime.now(UTC)).mac == "aa:bb:cc:00:00:99"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert str(path) in warnings[0] and "(line 1)" in warnings[0] and HUGE in warnings[0]
