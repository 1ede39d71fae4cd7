"""Holds the running compiled policy and swaps in a changed policy file atomically once it validates."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from mitmproxy import ctx, exceptions

from gateway.policy.compiled import CompiledPolicy, load_compiled
from gateway.policy.loader import PolicyError

log = logging.getLogger(__name__)

Stamp = tuple[tuple[str, int, int] | None, ...]


def _stamp(files: list[Path]) -> Stamp:
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

    def __init__(self) -> None:
        self._stamp: Stamp = ()
        self._watcher: asyncio.Task | None = None

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
            except PolicyError as exc:
                raise exceptions.OptionsError(f"the policy is invalid:\n{exc}") from None
            self._install(compiled)

    def running(self) -> None:
        if ctx.options.gateway_reload_interval_ms > 0 and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    def _install(self, compiled: CompiledPolicy) -> None:
        # One reference assignment: a request in flight keeps the policy it started with.
        self.current = compiled
        self._stamp = _stamp(compiled.list_files())
        for warning in compiled.warnings:
            log.warning(warning)
        log.info(
            "policy %s loaded: %d rules, %d list entries", compiled.loaded.path, len(compiled.rules), len(compiled.domains)
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(ctx.options.gateway_reload_interval_ms / 1000)
            files = self.current.list_files()
            stamp = await asyncio.to_thread(_stamp, files)
            if stamp != self._stamp:
                await self.reload()

    async def reload(self) -> None:
        path = Path(ctx.options.gateway_policy)
        files = self.current.list_files()
        try:
            compiled = await asyncio.to_thread(load_compiled, path)
        except PolicyError as exc:
            # Remember the broken files' stamp so the error is logged once, not every second.
            self._stamp = await asyncio.to_thread(_stamp, files)
            log.error("policy reload failed; the running policy stays in force:\n%s", exc)
            return
        except Exception:
            self._stamp = await asyncio.to_thread(_stamp, files)
            log.exception("policy reload failed; the running policy stays in force")
            return
        self._install(compiled)
