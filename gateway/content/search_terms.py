"""Search terms from well-known search URLs.

DfE monitoring asks for the search term behind a blocked or flagged attempt, so the access log keeps these even
when the privacy setting drops query strings.
"""

from __future__ import annotations

from urllib.parse import parse_qs

# Registered domain -> the query parameters that carry the search.
_ENGINES: dict[str, tuple[str, ...]] = {
    "google": ("q",),
    "bing.com": ("q",),
    "duckduckgo.com": ("q",),
    "youtube.com": ("search_query", "q"),
    "yahoo.com": ("p", "q"),
    "ecosia.org": ("q",),
}

_MAX_LENGTH = 500


def _engine_params(host: str) -> tuple[str, ...] | None:
    labels = host.lower().rstrip(".").split(".")
    # google.com, google.co.uk, www.google.de …: any host with a "google" label before the public suffix.
    if "google" in labels[:-1]:
        return _ENGINES["google"]
    for size in (2, 3):
        params = _ENGINES.get(".".join(labels[-size:]))
        if params:
            return params
    return None


def search_terms(host: str, query: str) -> str | None:
    """The search a URL carries (`host`, raw query string without '?'), or None if it is not a search."""
    if not query:
        return None
    params = _engine_params(host)
    if params is None:
        return None
    parsed = parse_qs(query, keep_blank_values=False)
    for name in params:
        values = parsed.get(name)
        if values and values[0].strip():
            return " ".join(values[0].split())[:_MAX_LENGTH]
    return None
