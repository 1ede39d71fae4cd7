"""The proxy's summaries of failed sign-ins, bounded however an attacker spreads the attempts: over usernames from
one device, or over addresses (a device on IPv6 can have as many as it likes)."""

from __future__ import annotations

from gateway.identity.attempt_limits import Refusal
from gateway.identity.sign_in_reports import MOST_ACCOUNTS, MOST_OPEN, SignInReports


def test_a_window_is_reported_once_when_it_ends_and_a_new_one_starts_after() -> None:
    reports = SignInReports(window=60.0)
    reports.wrong("10.1.2.3", " MrP ", now=0.0)
    reports.wrong("10.1.2.3", "mrp", now=10.0)
    reports.refused("10.1.2.3", "mrp", Refusal.ACCOUNT, now=20.0)
    assert reports.ended(59.0) == []
    [ended] = reports.ended(60.0)
    assert ended.summary() == ("3 failed proxy sign-ins for account mrp from 10.1.2.3 in 60 s, limited: 1 turned "
                               "away without checking the password (too many wrong passwords for this account from "
                               "this device)")
    assert reports.ended(600.0) == []
    reports.wrong("10.1.2.3", "mrp", now=700.0)
    [again] = reports.all()
    assert again.summary() == "1 failed proxy sign-in for account mrp from 10.1.2.3 in 60 s"


def test_minted_usernames_and_addresses_make_one_more_row_not_one_each() -> None:
    reports = SignInReports(window=300.0)
    for n in range(500):
        reports.refused("10.1.2.3", f"user{n}", Refusal.DEVICE, now=1.0)
    for n in range(3 * MOST_OPEN):
        reports.wrong(f"2001:db8::{n:x}", "mrp", now=2.0)
    ended = reports.ended(400.0)
    assert len(ended) == MOST_OPEN + 1  # the open windows at most, and the one the rest share
    assert sum(r.wrong + r.refused for r in ended) == 500 + 3 * MOST_OPEN
    others = [r for r in ended if r.address is None]
    assert [r.summary() for r in others] == [
        f"{3 * MOST_OPEN - (MOST_OPEN - MOST_ACCOUNTS - 1)} failed proxy sign-ins for other accounts from other "
        "devices in 5 min"]
    # Usernames are cut: no room for a paragraph (or a password typed in the wrong box) in the trail.
    reports.wrong("10.1.2.4", "x" * 1000, now=500.0)
    [long] = reports.all()
    assert long.target == "person:" + "x" * 64
