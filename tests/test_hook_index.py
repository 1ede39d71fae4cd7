"""The gateway's Master offers each event only to the addons with a hook for it, and still behaves as mitmproxy's
own addon manager: order, hooks turned off at run time, an addon's error, AddonHalt, addons added later."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from mitmproxy import exceptions, options
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import tflow

from gateway.proxy.master import GatewayMaster


class Recorder:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def request(self, flow) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(self.name)


class Switchable(Recorder):
    def configure(self, updated: set[str]) -> None:
        # As the gateway's parts do: a hook on or off by configuration.
        self.request = None if "off" in self.calls else super().request  # type: ignore[method-assign]


class Halting(Recorder):
    def request(self, flow) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(self.name)
        raise exceptions.AddonHalt


class Failing(Recorder):
    async def request(self, flow) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(self.name)
        raise RuntimeError("broken addon")


def request_reaches(confdir: Path, parts: list[object], then: tuple[object, ...] = ()) -> list[str]:
    async def go() -> list[str]:
        master = GatewayMaster(options.Options())
        master.options.update(confdir=str(confdir))
        master.add_parts(parts)
        await master.addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
        for addon in then:
            master.addons.add(addon)
        if then:
            await master.addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
        await master.done()
        return calls

    calls: list[str] = parts[0].calls  # type: ignore[attr-defined]
    return asyncio.run(go())


def test_every_hook_runs_in_order_and_one_turned_off_is_skipped(tmp_path):
    calls: list[str] = []
    parts = [Recorder("first", calls), Switchable("switch", calls), Recorder("last", calls)]
    assert request_reaches(tmp_path, parts) == ["first", "switch", "last"]
    calls[:] = ["off"]
    assert request_reaches(tmp_path, [Recorder("first", calls), Switchable("switch", calls)]) == ["off", "first"]


def test_an_addon_that_raises_is_logged_and_the_addons_after_it_still_run(tmp_path, caplog):
    # As in mitmproxy: an error ends the event for the addon that raised (with its children, here the gateway's
    # parts), and is logged; the next addon still gets it.
    calls: list[str] = []
    with caplog.at_level(logging.ERROR):
        got = request_reaches(tmp_path, [Failing("failing", calls), Recorder("same", calls)],
                              then=(Recorder("next", calls),))  # fmt: skip
    assert got == ["failing", "failing", "next"]
    assert "broken addon" in caplog.text


def test_addon_halt_stops_the_event(tmp_path):
    calls: list[str] = []
    got = request_reaches(tmp_path, [Halting("halt", calls)], then=(Recorder("never", calls),))
    assert got == ["halt", "halt"]


def test_an_addon_added_after_an_event_gets_the_next_one(tmp_path):
    calls: list[str] = []
    got = request_reaches(tmp_path, [Recorder("part", calls)], then=(Recorder("late", calls),))
    assert got == ["part", "part", "late"]
