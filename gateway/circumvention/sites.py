"""The site a host belongs to, near enough to tell `cdn1.proxy.example` and `cdn2.proxy.example` apart from
`other.example`, without a public-suffix list: the last two labels, or three under a country's second-level
domains (`bbc.co.uk`, `school.sch.uk`)."""

from __future__ import annotations

# Second-level labels under a two-letter country code that are registries, not sites (co.uk, com.au, ac.jp...).
SECOND_LEVEL = frozenset({"ac", "co", "com", "edu", "gov", "ltd", "me", "net", "nhs", "org", "plc", "police", "sch",
                          "mod", "nic", "or", "ne", "go", "gob", "gv"})  # fmt: skip


def site_of(host: str) -> str:
    """The site of a normalised host name; an IP address is its own site."""
    last = host.rfind(".")
    if last < 0 or ":" in host or host[last + 1 :].isdigit():
        return host
    second = host.rfind(".", 0, last)
    if second < 0:
        return host
    if len(host) - last == 3 and host[second + 1 : last] in SECOND_LEVEL:
        third = host.rfind(".", 0, second)
        return host[third + 1 :]
    return host[second + 1 :]


def same_site(a: str, b: str) -> bool:
    return a == b or site_of(a) == site_of(b)
