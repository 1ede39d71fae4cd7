"""The self-test token: honoured only when signed with this gateway's secret, intact and not expired."""

from __future__ import annotations

import pytest

from gateway.selftest.token import BadToken, mint, read

SECRET = "the-console-secret"


def test_a_token_carries_group_year_origin_and_expiry():
    token = read(SECRET, mint(SECRET, "pupil", 6, ("127.0.0.1", 4321), now=1000.0), now=1100.0)
    assert (token.group, token.year_group, token.origin, token.expires) == ("pupil", 6, ("127.0.0.1", 4321), 1600.0)


@pytest.mark.parametrize("text, now, why", [
    (mint("another-secret", "staff", None, ("127.0.0.1", 1)), 0.0, "not signed"),
    (mint(SECRET, "staff", None, ("127.0.0.1", 1), now=0.0), 601.0, "expired"),
    (mint(SECRET, "staff", None, ("127.0.0.1", 1), now=0.0)[:-2] + "xx", 0.0, "not signed"),
    ("not a token at all", 0.0, "not signed"),
])  # fmt: skip
def test_a_forged_expired_or_damaged_token_is_refused(text, now, why):
    with pytest.raises(BadToken, match=why):
        read(SECRET, text, now=now)
