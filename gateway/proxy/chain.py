"""Presents the gateway's addons to mitmproxy as one addon.

mitmproxy looks every event up on every addon of a script (`hasattr(a, "addons")` and `getattr(a, event)`, an
attribute miss for most of them) and wraps each call it makes; at eight events a request, a dozen addons cost more
than their own hooks. The chain keeps one class per concern and answers mitmproxy with one object whose hooks call
the parts that implement them, in order.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from mitmproxy import hooks

# The chain calls these on every part itself; every other mitmproxy event is bound to the parts that implement
# it, or to None, so mitmproxy's lookup of an event no part handles finds None instead of missing. A part may turn
# a hook off by setting it to None in `configure`.
LIFECYCLE = ("load", "configure", "running", "done")
# mitmproxy warns about any addon that has this attribute at all.
DEPRECATED = ("add_log",)


def _calls(parts: Sequence[object], name: str) -> list[Callable[..., Any]]:
    return [hook for part in parts if (hook := getattr(part, name, None))]


def _dispatcher(hooks: list[Callable[..., Any]]) -> Callable[..., Any] | None:
    """One callable for mitmproxy: the only hook itself, or a function calling each in turn (awaiting as needed)."""
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]
    if not any(inspect.iscoroutinefunction(h) for h in hooks):

        def call_each(*args: Any) -> None:
            for hook in hooks:
                hook(*args)

        return call_each

    async def await_each(*args: Any) -> None:
        for hook in hooks:
            result = hook(*args)
            if result is not None and inspect.isawaitable(result):
                await result

    return await_each


class AddonChain:
    def __init__(self, *parts: object) -> None:
        self.parts = parts
        self._bind_lifecycle()
        self._bind_events()

    def _bind_lifecycle(self) -> None:
        for name in LIFECYCLE:
            dispatch = _dispatcher(_calls(self.parts, name))
            if dispatch is not None:
                setattr(self, f"_{name}", dispatch)

    def _bind_events(self) -> None:
        for name in hooks.all_hooks:
            if name not in LIFECYCLE and name not in DEPRECATED:
                setattr(self, name, _dispatcher(_calls(self.parts, name)))

    def load(self, loader: Any) -> None:
        if hasattr(self, "_load"):
            self._load(loader)

    def configure(self, updated: set[str]) -> None:
        if hasattr(self, "_configure"):
            self._configure(updated)
        # A part's configure may have turned its hooks on or off.
        self._bind_events()

    async def running(self) -> None:
        if hasattr(self, "_running"):
            result = self._running()
            if result is not None and inspect.isawaitable(result):
                await result

    async def done(self) -> None:
        if hasattr(self, "_done"):
            result = self._done()
            if result is not None and inspect.isawaitable(result):
                await result
