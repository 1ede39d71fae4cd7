"""The built-in service controls, as data: which hosts each search engine answers on, the parameters and cookie
settings that force its safe search (and on which paths), YouTube's restricted-mode hosts, and the sign-in hosts
that take the Google and Microsoft account locks. The policy's `safe_search.engines` and `services` add to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.services.google_domains import GOOGLE_DOMAINS


@dataclass(frozen=True, slots=True)
class SearchEngine:
    hosts: tuple[str, ...]
    # Query (and posted form) parameters forced on the search paths; any the pupil sent under those names, in any
    # spelling, is dropped first.
    params: tuple[tuple[str, str], ...]
    # Path prefixes the parameters apply to (a whole segment each: "/search" covers "/search/x", not "/searching");
    # None: every path.
    paths: tuple[str, ...] | None
    # Settings inside a cookie ("&"-separated key=value pairs, as Bing's SRCHHPGUSR), forced on every path.
    cookies: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


# Other names google.com answers searches on, which a pupil finds when www is rewritten: the old encrypted-search
# host and the IPv4/IPv6-only ones.
GOOGLE_COM_ALIASES = ("encrypted.google.com", "ipv4.google.com", "ipv6.google.com")


def _google_hosts() -> tuple[str, ...]:
    countries = (f"{prefix}{domain}" for domain in GOOGLE_DOMAINS for prefix in ("", "www.", "images.", "news."))
    return (*countries, *GOOGLE_COM_ALIASES)


SEARCH_ENGINES: dict[str, SearchEngine] = {
    "google": SearchEngine(
        hosts=_google_hosts(),
        params=(("safe", "active"),),
        paths=("/", "/search", "/webhp", "/imghp", "/images", "/videohp", "/imgres", "/complete/search"),
    ),
    "bing": SearchEngine(
        hosts=("bing.com", "www.bing.com", "cn.bing.com"),
        params=(("adlt", "strict"),),
        paths=("/", "/search", "/images", "/videos", "/news", "/shop", "/as"),
        cookies=(("SRCHHPGUSR", (("ADLT", "STRICT"),)),),
    ),
    # DuckDuckGo answers searches on many paths (/, /html, /lite, /d.js, /i.js, /ac): every path gets kp=1.
    "duckduckgo": SearchEngine(
        hosts=("duckduckgo.com", "www.duckduckgo.com", "html.duckduckgo.com", "lite.duckduckgo.com",
               "start.duckduckgo.com", "links.duckduckgo.com", "safe.duckduckgo.com"),  # fmt: skip
        params=(("kp", "1"),),
        paths=None,
    ),
}

YOUTUBE = "youtube"
YOUTUBE_HEADER = "YouTube-Restrict"
YOUTUBE_VALUES = {"strict": "Strict", "moderate": "Moderate"}
# The hosts Google names for restricted mode, and the short-link and music hosts that lead to the same videos.
YOUTUBE_HOSTS: tuple[str, ...] = (
    "youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be", "youtube-nocookie.com",
    "www.youtube-nocookie.com", "youtubei.googleapis.com", "youtube.googleapis.com",
)  # fmt: skip

ENGINE_NAMES = frozenset({*SEARCH_ENGINES, YOUTUBE})

GOOGLE_SIGN_IN_HEADER = "X-GoogApps-Allowed-Domains"
GOOGLE_SIGN_IN_HOSTS: tuple[str, ...] = ("accounts.google.com", "accounts.youtube.com")
MICROSOFT_TENANTS_HEADER = "Restrict-Access-To-Tenants"
MICROSOFT_CONTEXT_HEADER = "Restrict-Access-Context"
MICROSOFT_SIGN_IN_HOSTS: tuple[str, ...] = ("login.microsoftonline.com", "login.microsoft.com", "login.windows.net")
