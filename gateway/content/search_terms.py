"""Search terms from well-known search URLs: web, image and video search boxes.

DfE monitoring asks for the search term behind a blocked or flagged attempt, so the access log keeps these even
when the privacy setting drops query strings, and content analysis scores them against the term lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

_MAX_LENGTH = 500


@dataclass(frozen=True, slots=True)
class _Engine:
    # Query parameters that carry the search, in the order to try them.
    params: tuple[str, ...]
    # Paths where those parameters are a search ("/" alone means the home page only); empty: any path.
    # Elsewhere on the same site a `q` is something else (Google's `/url?q=` is a redirect target).
    paths: tuple[str, ...] = ()
    # Engines that put the term in the path: its first group.
    path_term: re.Pattern[str] | None = None

    def on_search_path(self, path: str) -> bool:
        if not path or not self.paths:
            return True
        return any(path == prefix if prefix == "/" else path.startswith(prefix) for prefix in self.paths)


_GOOGLE = _Engine(("q",), ("/", "/search", "/webhp", "/complete/search", "/images", "/videos"))
_YOUTUBE = _Engine(("search_query", "q"), ("/results", "/search"))
_PINTEREST = _Engine(("q",), ("/search/",))

# Registered domain -> engine. Google, YouTube and Pinterest have country domains and are matched by label.
_ENGINES: dict[str, _Engine] = {
    "bing.com": _Engine(("q",), ("/search", "/images/search", "/videos/search", "/news/search")),
    # duckduckgo.com/?q=, /html/ and /lite/, and html.duckduckgo.com/html/.
    "duckduckgo.com": _Engine(("q",), ("/", "/html", "/lite")),
    # search.yahoo.com/search, images.search.yahoo.com/search/images, video.search.yahoo.com/search/video.
    "yahoo.com": _Engine(("p", "q"), ("/search",)),
    "ecosia.org": _Engine(("q",), ("/search", "/images", "/videos", "/news")),
    # Any language: en.wikipedia.org/w/index.php?search=, /wiki/Special:Search?search= or /wiki/Special:Search/term.
    "wikipedia.org": _Engine(("search",), ("/w/index.php", "/wiki/"), re.compile(r"^/wiki/Special:Search/([^?#]+)")),
    "vimeo.com": _Engine(("q",), ("/search",)),
    # www.dailymotion.com/search/<term> and /search/<term>/videos.
    "dailymotion.com": _Engine(("q",), ("/search",), re.compile(r"^/search/([^/?#]+)")),
    "flickr.com": _Engine(("text",), ("/search",)),
    "tiktok.com": _Engine(("q",), ("/search",)),
}
_BY_LABEL = {"google": _GOOGLE, "youtube": _YOUTUBE, "pinterest": _PINTEREST}


def _engine(host: str) -> _Engine | None:
    labels = host.lower().rstrip(".").split(".")
    # google.com, www.google.co.uk, google.com.au, uk.pinterest.com …: the label just before the public suffix
    # (one label, or two when the second is short like "co" or "com"), so google.evil.example is not Google.
    if len(labels) >= 2:
        engine = _BY_LABEL.get(labels[-2])
        if engine is None and len(labels) >= 3 and len(labels[-2]) <= 3:
            engine = _BY_LABEL.get(labels[-3])
        if engine is not None:
            return engine
    for size in (2, 3):
        engine = _ENGINES.get(".".join(labels[-size:]))
        if engine is not None:
            return engine
    return None


def _clean(term: str) -> str | None:
    term = " ".join(term.split())[:_MAX_LENGTH].rstrip()
    return term or None


def search_terms(host: str, query: str, path: str = "") -> str | None:
    """The search a URL carries (`host`, raw query string without '?', and the path when known), or None if it
    is not a search. Without a path, the query's parameters are read wherever they appear."""
    engine = _engine(host)
    if engine is None:
        return None
    path = path.partition("?")[0]
    if engine.path_term is not None and path:
        found = engine.path_term.match(path)
        if found:
            return _clean(unquote(found.group(1).replace("+", " ").replace("_", " ")))
    if not query or not engine.on_search_path(path):
        return None
    parsed = parse_qs(query, keep_blank_values=False)
    for name in engine.params:
        values = parsed.get(name)
        if values and values[0].strip():
            return _clean(values[0])
    return None
