"""mitmproxy's addon manager, offering each event only to the addons that have a hook for it.

For every event of every flow, mitmproxy's manager walks every addon (and their children), looks the event's name
up on each, and enters a context manager per addon; then it does it all again for an `update` event that no addon
of the gateway's Master handles. At eight such walks a request over a dozen addons, the walking costs more than
the gateway's own hooks. This manager remembers, per event name, which addons have an attribute of that name (a
method, or None where a part has turned its hook off), and walks only those. What an addon does stays the same:
the same order, each top-level addon's hooks under one `safecall` (an addon error is logged and the next addon
still runs), `AddonHalt` stopping the event, and a hook set to None at run time skipped.

The index is made again whenever the set of addons or their configuration changes (load, remove, every `configure`
and `running`): an addon that gains a hook of a new name is seen from its next configure on.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

from mitmproxy import addonmanager, exceptions, flow, hooks

# Per event name: each top-level addon with any holder of that hook among it and its children, with the holders.
Index = dict[str, list[tuple[Any, list[Any]]]]


class IndexedAddonManager(addonmanager.AddonManager):
    def __init__(self, master: Any) -> None:
        super().__init__(master)
        self._index: Index = {}

    def forget(self) -> None:
        """Make the index again at the next event (the addons or their hooks may have changed)."""
        self._index = {}

    def register(self, addon: Any) -> Any:
        self.forget()
        return super().register(addon)

    def remove(self, addon: Any) -> None:
        self.forget()
        super().remove(addon)

    def clear(self) -> None:
        self.forget()
        super().clear()

    def trigger(self, event: hooks.Hook) -> None:
        if isinstance(event, hooks.ConfigureHook):
            # Where an addon may turn its hooks on or off.
            self.forget()
        super().trigger(event)

    def _holders(self, name: str) -> list[tuple[Any, list[Any]]]:
        found = self._index.get(name)
        if found is None:
            found = []
            for top in self.chain:
                holders = [a for a in addonmanager.traverse([top]) if hasattr(a, name)]
                if holders:
                    found.append((top, holders))
            self._index[name] = found
        return found

    async def trigger_event(self, event: hooks.Hook) -> None:
        if isinstance(event, hooks.RunningHook):
            self.forget()
        name = event.name
        args = None
        for _top, holders in self._holders(name):
            if args is None:
                args = event.args()
            try:
                with addonmanager.safecall():
                    for addon in holders:
                        func = getattr(addon, name, None)
                        if func is None or isinstance(func, types.ModuleType):
                            continue  # turned off at run time; or a module imported under a hook's name
                        if not callable(func):
                            raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")
                        result = func(*args)
                        if result is not None and inspect.isawaitable(result):
                            await result
            except exceptions.AddonHalt:
                return

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        await self.trigger_event(event)
        message = event.args()[0]
        if isinstance(message, flow.Flow) and self._holders("update"):
            await self.trigger_event(hooks.UpdateHook([message]))
