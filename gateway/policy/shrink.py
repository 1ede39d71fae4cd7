"""A reload that empties a list, or cuts it by more than half, is refused unless the operator confirms it.

A list file truncated by a failed download or overwritten by mistake still parses; swapped in, it would quietly
unblock what the list held. The running gateway compares each list's size with the policy it runs and refuses
such a reload. The operator confirms a deliberate cut with `gateway policy reload --confirm-shrink`, which writes
a confirmation file next to the policy holding a fingerprint of every list's content as it is then: the gateway
(another process) accepts the cut only while the shrunk lists still match their fingerprints, so a confirmation
never covers a later, different change.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.policy.compiled import CompiledPolicy
from gateway.policy.loader import PolicyError

CONFIRMATION_SUFFIX = ".confirm-shrink.json"


@dataclass(frozen=True, slots=True)
class Shrink:
    name: str
    before: int
    after: int

    def __str__(self) -> str:
        cut = "emptied" if not self.after else f"cut by {100 - 100 * self.after // self.before}%"
        return f"list {self.name!r} would go from {self.before:,} to {self.after:,} entries ({cut})"


def shrunk_lists(running: CompiledPolicy, new: CompiledPolicy) -> list[Shrink]:
    """Lists in both policies that the new one empties or more than halves."""
    shrinks = []
    for name, before in running.list_sizes.items():
        after = new.list_sizes.get(name)
        if after is not None and before and (after == 0 or 2 * after < before):
            shrinks.append(Shrink(name, before, after))
    return shrinks


def check_shrink(running: CompiledPolicy, new: CompiledPolicy) -> None:
    """PolicyError naming each list the new policy empties or more than halves, unless the cut is confirmed."""
    shrinks = shrunk_lists(running, new)
    if not shrinks:
        return
    confirmed = read_confirmation(new.loaded.path)
    unconfirmed = [s for s in shrinks if confirmed.get(s.name) != list_fingerprint(new, s.name)]
    if unconfirmed:
        command = f"gateway policy reload --confirm-shrink {new.loaded.path}"
        raise PolicyError([
            new.loaded.problem(("lists", s.name), f"{s}: refused in case the file is damaged; if the cut is meant, "
                                                   f"confirm it with `{command}`")
            for s in unconfirmed
        ])  # fmt: skip


def confirmation_path(policy_path: Path) -> Path:
    return policy_path.with_name(policy_path.name + CONFIRMATION_SUFFIX)


def confirm(compiled: CompiledPolicy) -> Path:
    """Record the content of every list as it is now as confirmed, for running gateways to accept its cuts."""
    path = confirmation_path(compiled.loaded.path)
    record = {"lists": {name: list_fingerprint(compiled, name) for name in compiled.policy.lists}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_confirmation(policy_path: Path) -> dict[str, str]:
    try:
        record = json.loads(confirmation_path(policy_path).read_text())
    except (OSError, ValueError):
        return {}
    lists = record.get("lists") if isinstance(record, dict) else None
    return {k: v for k, v in lists.items() if isinstance(v, str)} if isinstance(lists, dict) else {}


def list_fingerprint(compiled: CompiledPolicy, name: str) -> str:
    """A sha256 of everything a list is made of: its files' contents, by the names the policy gives them, and its
    inline domains."""
    digest = hashlib.sha256()
    for label, path in _list_parts(compiled, name):
        digest.update(f"{label}\0".encode())
        try:
            with path.open("rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        except OSError:
            digest.update(b"missing")
    digest.update("\n".join(compiled.policy.lists[name].domains).encode())
    return digest.hexdigest()


def _list_parts(compiled: CompiledPolicy, name: str) -> Iterator[tuple[str, Path]]:
    source = compiled.policy.lists[name]
    for field in ("files", "url_files"):
        for file in getattr(source, field):
            yield f"{field}:{file}", compiled.loaded.resolve(file)
    imports = compiled.loaded.resolve(compiled.policy.imports)
    for category in source.ut1:
        for part in ("domains", "urls"):
            yield f"ut1:{category}/{part}", imports / category / part
