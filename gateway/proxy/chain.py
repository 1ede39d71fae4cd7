"""Presents the gateway's addons to mitmproxy as one addon, and fails closed when a part raises.

mitmproxy looks every event up on every addon of a script (`hasattr(a, "addons")` and `getattr(a, event)`, an
attribute miss for most of them) and wraps each call it makes; at eight events a request, a dozen addons cost more
than their own hooks. The chain keeps one class per concern and answers mitmproxy with one object whose hooks call
the parts that implement them, in order.

mitmproxy would catch a part's exception, log it and carry on with the flow as it stands: unfiltered. For the hooks
that decide, the chain catches it itself, skips the parts after it and hands the hook's arguments to a failure
handler (`gateway.proxy.fail_closed`), which blocks.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mitmproxy import hooks

# The chain calls these on every part itself; every other mitmproxy event is bound to the parts that implement
# it, or to None, so mitmproxy's lookup of an event no part handles finds None instead of missing. A part may turn
# a hook off by setting it to None in `configure`.
LIFECYCLE = ("load", "configure", "running", "done")
# mitmproxy warns about any addon that has this attribute at all.
DEPRECATED = ("add_log",)

log = logging.getLogger(__name__)

Handler = Callable[..., None]


def _calls(parts: Sequence[object], name: str) -> list[Callable[..., Any]]:
    found = [(part, hook) for part in parts if (hook := getattr(part, name, None))]
    for part, hook in found:
        _check_hook(part, name, hook)
    return [hook for _, hook in found]


def _check_hook(part: object, name: str, hook: Callable[..., Any]) -> None:
    """A part's method that happens to share a hook's name (`update`, `request`, `error`) would be called by
    mitmproxy with a flow on every event: refuse, at start-up, any whose parameters are not the hook's own."""
    wanted = [f.name for f in dataclasses.fields(hooks.all_hooks[name])]
    try:
        given = list(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        return  # a builtin or a C function: nothing to compare
    if given != wanted:
        raise TypeError(f"{type(part).__name__}.{name}({', '.join(given)}) has mitmproxy's hook name {name!r} but "
                        f"not its parameters ({', '.join(wanted)}): rename it, or take the hook's parameters")


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


def _guarded(name: str, dispatch: Callable[..., Any], on_failure: Handler) -> Callable[..., Any]:
    """`dispatch`, with any exception from a part turned into `on_failure(*args)` instead of a pass."""
    if inspect.iscoroutinefunction(dispatch):

        async def guarded_async(*args: Any) -> None:
            try:
                await dispatch(*args)
            except Exception:
                log.exception("a gateway part failed in %s; failing closed", name)
                on_failure(*args)

        return guarded_async

    def guarded(*args: Any) -> None:
        try:
            dispatch(*args)
        except Exception:
            log.exception("a gateway part failed in %s; failing closed", name)
            on_failure(*args)

    return guarded


def _timed(dispatch: Callable[..., None], observe: Callable[..., None]) -> Callable[..., None]:
    """`dispatch`, telling `observe` the nanoseconds it took and the hook's arguments (a synchronous hook only:
    awaiting would time whatever else the event loop ran meanwhile)."""
    clock = time.perf_counter_ns

    def timed(*args: Any) -> None:
        start = clock()
        dispatch(*args)
        observe(clock() - start, *args)

    return timed


class AddonChain:
    def __init__(self, *parts: object, on_failure: Mapping[str, Handler] | None = None,
                 timers: Mapping[str, Callable[..., None]] | None = None) -> None:  # fmt: skip
        self.parts = parts
        self.on_failure = dict(on_failure or {})
        # Hook -> told how long each call of it took (the metrics' decision latency).
        self.timers = dict(timers or {})
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
                dispatch = _dispatcher(_calls(self.parts, name))
                if dispatch is not None and name in self.on_failure:
                    dispatch = _guarded(name, dispatch, self.on_failure[name])
                if dispatch is not None and name in self.timers and not inspect.iscoroutinefunction(dispatch):
                    dispatch = _timed(dispatch, self.timers[name])
                setattr(self, name, dispatch)

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
