"""Holds the running compiled policy and swaps in a changed policy file atomically once it validates.

Each reload it installs or refuses goes to the audit trail (who: `gateway:<site>`, the file's sha256, a short
diff of the YAML against the text loaded before), written from a worker thread through the proxy's audit rows
(`gateway.proxy.audit_rows`).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions

from gateway.policy.compiled import CompiledPolicy, load_compiled
from gateway.policy.expectations import check_expectations
from gateway.policy.loader import PolicyError
from gateway.policy.shrink import check_shrink
from gateway.proxy.audit_rows import AuditRows
from gateway.store.audit import short_diff

log = logging.getLogger(__name__)

Stamp = tuple[tuple[str, int, int] | None, ...]


def _stamp(files: Sequence[Path]) -> Stamp:
    stamps = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(stamps)


class PolicySource:
    # Assigned by `configure` before any hook runs; left unset until then so that mitmproxy's command
    # discovery, which reads every attribute, does not see a half-made addon.
    current: CompiledPolicy

    def __init__(self, audit: AuditRows | None = None) -> None:
        # Configured by the chain as a part of its own (`gateway.proxy.parts`); without it, reloads go unrecorded.
        self.audit = audit if audit is not None else AuditRows()
        self._stamp: Stamp = ()
        self._watcher: asyncio.Task | None = None
        # The policy text last installed: what the next audited change is diffed against.
        self._text = ""
        self._frozen = False
        self._listeners: list[Callable[[CompiledPolicy], None]] = []
        # Changed policies refused since start, once each (the `gateway_policy_reload_failures` metric): counted
        # here, where the refusal is decided, so monitoring never depends on how the log words it.
        self.refused_reloads = 0

    def load(self, loader) -> None:
        loader.add_option("gateway_policy", str, "policies/default.yaml", "The school's policy file (YAML).")
        loader.add_option(
            "gateway_reload_interval_ms",
            int,
            1000,
            "Milliseconds between checks of the policy and list files for changes; 0 turns reloading off.",
        )

    def configure(self, updated: set[str]) -> None:
        if "gateway_policy" in updated:
            path = Path(ctx.options.gateway_policy)
            try:
                compiled = load_compiled(path)
                check_expectations(compiled)
            except PolicyError as exc:
                raise exceptions.OptionsError(f"the policy is invalid:\n{exc}") from None
            self._install(compiled)
            self._text = _read(path).decode("utf-8", "replace")

    def running(self) -> None:
        if ctx.options.gateway_reload_interval_ms > 0 and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    def on_install(self, listener: Callable[[CompiledPolicy], None]) -> None:
        """Call `listener` with every policy installed from the file, before any decision is made with it (the
        grant follower compiles the grants against it and lays the local blocks over it)."""
        self._listeners.append(listener)

    def _install(self, compiled: CompiledPolicy) -> None:
        # One reference assignment: a request in flight keeps the policy it started with.
        self.current = compiled
        for listener in self._listeners:
            listener(compiled)
        if not self._frozen:
            # The libraries and the first policy live as long as the process: keep the collector from rescanning
            # them each time request objects that lived a little (queued log rows) trigger a full pass. Once only:
            # freezing again at each reload would make whatever is alive then (the replaced policy among it)
            # uncollectable, and memory would grow with every reload.
            gc.freeze()
            self._frozen = True
        self._stamp = _stamp(compiled.list_files)
        for warning in compiled.warnings:
            log.warning(warning)
        log.info(
            "policy %s loaded: %d rules, %d list entries", compiled.loaded.path, len(compiled.rules), len(compiled.domains)
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(ctx.options.gateway_reload_interval_ms / 1000)
            files = self.current.list_files
            stamp = await asyncio.to_thread(_stamp, files)
            if stamp != self._stamp:
                await self.reload()

    async def reload(self) -> None:
        path = Path(ctx.options.gateway_policy)
        files = self.current.list_files
        before = self._stamp
        try:
            compiled = await asyncio.to_thread(self._load_checked, path)
        except PolicyError as exc:
            # Remember the broken files' stamp so the error is logged (and counted) once, not every second.
            self._stamp = await asyncio.to_thread(_stamp, files)
            self.refused_reloads += 1
            log.error("policy reload failed; the running policy stays in force:\n%s", exc)
            await self._audit("policy-rejected", path, before, {"errors": [str(p) for p in exc.problems][:20]})
            return
        except Exception as exc:
            self._stamp = await asyncio.to_thread(_stamp, files)
            self.refused_reloads += 1
            log.exception("policy reload failed; the running policy stays in force")
            await self._audit("policy-rejected", path, before, {"errors": [f"{type(exc).__name__}: {exc}"]})
            return
        self._install(compiled)
        summary = f"{len(compiled.rules)} rules, {len(compiled.policy.lists)} lists, {len(compiled.domains)} list entries"
        await self._audit("policy-loaded", path, before, {"summary": summary})

    def _load_checked(self, path: Path) -> CompiledPolicy:
        """In a worker thread: the new policy, refused (PolicyError) if it empties or halves a running list or breaks
        one of its expected decisions."""
        compiled = load_compiled(path)
        check_shrink(self.current, compiled)
        check_expectations(compiled)
        return compiled

    async def _audit(self, action: str, path: Path, before: Stamp, detail: dict[str, Any]) -> None:
        """Record a reload in the audit trail, off the event loop; a failure here never touches the policy."""
        if not self.audit.on:
            return
        changed = sorted({s[0] for s in set(before) ^ set(self._stamp) if s is not None})
        site = self.current.policy.school.site
        try:
            text = await asyncio.to_thread(self._keep, action, path, changed, detail, site)
        except Exception:
            log.exception("could not record the policy %s in the audit trail", action.removeprefix("policy-"))
            return
        if action == "policy-loaded":
            self._text = text
        self.audit.deliver()

    def _keep(self, action: str, path: Path, changed: list[str], detail: dict[str, Any], site: str) -> str:
        """In a worker thread: the audit row, kept on disk for delivery. Returns the policy text."""
        data = _read(path)
        text = data.decode("utf-8", "replace")
        diff = short_diff(self._text, text, path.name) if text != self._text else ""
        self.audit.keep([self.audit.row(action, policy_site=site, target="policy", detail={
            "file": str(path), "sha256": hashlib.sha256(data).hexdigest(), "diff": diff,
            "changed_files": changed, **detail,
        })])  # fmt: skip
        return text


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
