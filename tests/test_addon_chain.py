"""AddonChain: mitmproxy sees one addon; the parts' hooks still run in order, awaited, and can be switched off."""

import asyncio

from mitmproxy.test import taddons

from gateway.proxy.chain import AddonChain


class Part:
    def __init__(self, name: str, calls: list) -> None:
        self.name, self.calls = name, calls

    def load(self, loader) -> None:
        self.calls.append((self.name, "load"))

    def requestheaders(self, flow) -> None:
        self.calls.append((self.name, "requestheaders"))


class AsyncPart(Part):
    def configure(self, updated) -> None:
        # Switched off by its own configuration, like the portal when no network needs sign-in.
        self.requestheaders = None

    async def response(self, flow) -> None:
        await asyncio.sleep(0)
        self.calls.append((self.name, "response"))


def test_parts_run_in_order_and_async_hooks_are_awaited():
    calls: list = []
    first, second = Part("first", calls), AsyncPart("second", calls)
    chain = AddonChain(first, second)
    with taddons.context(chain) as tctx:
        tctx.configure(chain)
        assert calls[:2] == [("first", "load"), ("second", "load")]
        # The async part switched its requestheaders off in configure: only the first part's remains.
        assert chain.requestheaders == first.requestheaders
        asyncio.run(chain.response(None))
        assert calls[-1] == ("second", "response")


def test_events_no_part_handles_are_none():
    chain = AddonChain(Part("only", []))
    assert chain.update is None and chain.tcp_message is None
    assert callable(chain.requestheaders)


def test_a_method_that_only_shares_a_hooks_name_is_refused_at_start_up():
    import pytest

    class Keeper:
        # Not a hook: mitmproxy would call it with flows on every `update` event.
        def update(self, rows) -> None:
            raise AssertionError("never called")

    with pytest.raises(TypeError, match=r"Keeper.update\(rows\) has mitmproxy's hook name 'update'"):
        AddonChain(Keeper())
