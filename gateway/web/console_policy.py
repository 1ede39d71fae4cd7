"""The policy file the console was given (`gateway console --policy`), compiled, and compiled again only when it or
one of its list files changes: what unblock requests and impact previews are checked against."""

from __future__ import annotations

import threading
from pathlib import Path

from flask import current_app

from gateway.policy.compiled import CompiledPolicy, load_compiled

_lock = threading.Lock()
_compiled: dict[str, tuple[tuple[float | None, ...], CompiledPolicy]] = {}


def console_policy() -> CompiledPolicy | None:
    """None when the console has no policy; OSError or PolicyError when the file does not load."""
    path = current_app.config["GATEWAY"].policy_path
    if not path:
        return None
    with _lock:
        cached = _compiled.get(str(path))
        if cached is None or cached[0] != _stamps(cached[1].list_files):
            compiled = load_compiled(path)
            cached = _compiled[str(path)] = (_stamps(compiled.list_files), compiled)
    return cached[1]


def _stamps(files: tuple[Path, ...]) -> tuple[float | None, ...]:
    stamps = []
    for file in files:
        try:
            stamps.append(file.stat().st_mtime)
        except OSError:
            stamps.append(None)
    return tuple(stamps)
