"""The text operations that force a setting: on a query string or a posted form, on a cookie's settings, and the
path comparison that says whether a request is a search. Pure and small: they run on search requests only.

A pupil's own value never survives: every parameter whose name reads the same once percent-decoded and case-folded
(`Safe=off`, `%73afe=off`, `safe=off` twice, `a=1;safe=off`) is dropped before the forced one is added.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, unquote, unquote_plus


def _name(piece: str) -> str:
    return unquote_plus(piece.partition("=")[0]).strip().lower()


def _forged(piece: str, names: frozenset[str]) -> bool:
    # Some servers also split parameters at ";": a name hidden after one counts as well.
    return _name(piece) in names or (";" in piece and any(_name(p) in names for p in piece.split(";")))


def force_params(query: str, params: Iterable[tuple[str, str]], names: frozenset[str]) -> str:
    """`query` (no leading "?") without any parameter named in `names` (lower case), then `params` added. The other
    parameters keep their order and their exact spelling."""
    kept = [piece for piece in query.split("&") if piece and not _forged(piece, names)]
    kept += [f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params]
    return "&".join(kept)


def force_settings(value: str, settings: Iterable[tuple[str, str]]) -> str:
    """A cookie value made of "&"-separated settings (Bing's `SRCHHPGUSR=SRCHLANG=en&ADLT=OFF`) with `settings`
    forced: the same keys in any case are dropped, the forced ones added."""
    forced = list(settings)
    names = frozenset(key.lower() for key, _ in forced)
    kept = [piece for piece in value.split("&") if piece and piece.partition("=")[0].strip().lower() not in names]
    return "&".join([*kept, *(f"{key}={setting}" for key, setting in forced)])


def normal_path(path: str) -> str:
    """A request path as a server would resolve it, for comparing with a policy's path shapes: without the query,
    percent-decoded, lower case, backslashes as slashes, empty, "." and ".." segments resolved, ";" parameters
    dropped. `//Sign%55p/./` is `/signup`."""
    text = unquote(path.partition("?")[0].partition("#")[0]).replace("\\", "/").lower()
    segments: list[str] = []
    for segment in text.split("/"):
        segment = segment.partition(";")[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def under(path: str, prefixes: Iterable[str]) -> bool:
    """Whether a normal path is one of `prefixes` (normal paths) or below one, a whole segment at a time. The
    prefix "/" covers only the root itself."""
    return any(path == prefix or (prefix != "/" and path.startswith(prefix + "/")) for prefix in prefixes)
