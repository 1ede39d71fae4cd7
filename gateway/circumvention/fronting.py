"""Domain fronting: a TLS server name for one site and a Host header (or CONNECT target) for another, so a blocked
site rides inside a connection to an allowed one. Names of one site (`www.bbc.co.uk`, `static.bbc.co.uk`) agree."""

from __future__ import annotations

from gateway.circumvention.sites import same_site
from gateway.lists.hosts import is_ip_literal


def fronted(sni: str | None, other: str | None) -> bool:
    """Whether a normalised TLS server name and a normalised host name name different sites. An address on
    either side is not fronting (a client that connects by address names the site only in TLS)."""
    if not sni or not other or sni == other:
        return False
    if is_ip_literal(other) or is_ip_literal(sni):
        return False
    return not same_site(sni, other)
