"""The shared record of wrong proxy passwords on its own, with the real SQLite file: two records on one spool
folder stand for two workers (each its own connection, as each worker process has)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway.identity.attempt_limits import MOST_DELAY, AttemptLimits, Refusal
from gateway.identity.sign_in_failures import SignInFailures


def test_attempts_racing_on_two_records_are_counted_once_each(tmp_path: Path) -> None:
    limits = AttemptLimits()
    workers = [SignInFailures(tmp_path, limits), SignInFailures(tmp_path, limits)]
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda n: workers[n % 2].attempt("10.0.0.5", "mrp"), range(40)))
    assert sum(v.refusal is None for v in verdicts) == limits.client_account_attempts
    assert {v.refusal for v in verdicts} == {None, Refusal.ACCOUNT}
    # However many devices guess the account, each attempt on it waits at most a couple of seconds.
    delays = [workers[n % 2].attempt(f"10.0.1.{n}", "mrp").delay for n in range(30)]
    assert delays == sorted(delays) and 0 < max(delays) <= MOST_DELAY


def test_the_right_password_and_the_window_end_a_refusal(tmp_path: Path) -> None:
    limits = AttemptLimits(window=2.0)
    first, second = SignInFailures(tmp_path, limits), SignInFailures(tmp_path, limits)
    for n in range(4):
        (first if n % 2 else second).attempt("10.0.0.6", "ben")
    ticket = first.attempt("10.0.0.6", "ben").ticket
    assert ticket is not None and second.attempt("10.0.0.6", "ben").refusal is Refusal.ACCOUNT
    # The right password, on one worker, clears the device's failures for the account on both.
    first.succeeded(ticket, "ben's own")
    assert first.proven("10.0.0.6", " BEN ", "ben's own") and not second.proven("10.0.0.6", "ben", "ben's own")
    assert second.attempt("10.0.0.6", "ben").refusal is None
    for n in range(9):
        (first if n % 2 else second).attempt("10.0.0.6", f"guess{n}")
    assert first.attempt("10.0.0.6", "ben").refusal is Refusal.DEVICE
    deadline = time.monotonic() + 10
    while second.attempt("10.0.0.6", "someone").refusal is not None:
        assert time.monotonic() < deadline, "still refused long after the window"
        time.sleep(0.1)
