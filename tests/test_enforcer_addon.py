"""The enforcing addon under mitmproxy's own test helpers: hooks called directly on made-up flows."""

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from gateway.decisions.types import Action
from gateway.proxy.clock import Clock
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.enforcer import Enforcer
from gateway.proxy.flow_state import Connections, flow_state
from gateway.proxy.grant_follower import GrantFollower
from gateway.proxy.identity import IdentityAddon
from gateway.proxy.policy_source import PolicySource
from tests.support.policies import DEMO_POLICY, write_policy


@pytest.fixture
def gateway():
    clock, policy = Clock(), PolicySource()
    guard = DestinationGuard(policy)
    enforcer = Enforcer(policy, clock, guard, Connections(), GrantFollower(policy))
    identity = IdentityAddon(policy)
    with taddons.context(clock, policy, identity, guard, enforcer) as tctx:
        tctx.configure(policy, gateway_policy=str(DEMO_POLICY), gateway_reload_interval_ms=0)
        tctx.configure(clock, gateway_now="2026-09-07T09:30")
        yield tctx, identity, enforcer, policy


def request(host: str, client: str = "127.0.0.1", **headers) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request.host = host
    flow.request.headers["host"] = host
    flow.request.path = "/"
    flow.client_conn.peername = (client, 50000)
    for name, value in headers.items():
        flow.request.headers[name.replace("_", "-")] = value
    return flow


def run(identity, enforcer, flow):
    identity.requestheaders(flow)
    enforcer.requestheaders(flow)
    return flow


def test_block_page_in_requestheaders(gateway):
    _, identity, enforcer, _ = gateway
    flow = run(identity, enforcer, request("www.facebook.com", accept="text/html"))
    assert flow.response.status_code == 403
    assert b"This page is blocked" in flow.response.content
    state = flow_state(flow)
    assert state.decision.action is Action.BLOCK
    assert state.identity.group == "pupil"
    assert state.instant.isoformat() == "2026-09-07T09:30:00+01:00"


def test_allowed_request_is_untouched_but_decided(gateway):
    _, identity, enforcer, _ = gateway
    flow = run(identity, enforcer, request("www.bbc.co.uk"))
    assert flow.response is None
    assert flow_state(flow).decision.action is Action.ALLOW


def test_host_header_cannot_launder_a_blocked_destination(gateway):
    _, identity, enforcer, _ = gateway
    flow = request("www.facebook.com")
    flow.request.headers["host"] = "www.bbc.co.uk"
    run(identity, enforcer, flow)
    assert flow.response.status_code == 403
    flow = request("www.bbc.co.uk")
    flow.request.headers["host"] = "instagram.com"
    run(identity, enforcer, flow)
    assert flow.response.status_code == 403


def test_clock_pin_is_validated(gateway):
    tctx, *_ = gateway
    clock = tctx.master.addons.get("clock")
    with pytest.raises(exceptions.OptionsError, match="not an ISO 8601 instant"):
        tctx.configure(clock, gateway_now="half past nine")


def test_invalid_policy_at_start_is_refused_with_file_and_line(tmp_path):
    bad = write_policy(tmp_path, "rules:\n  - {id: x, lists: [nowhere], action: block, reason: y}\n")
    policy = PolicySource()
    with taddons.context(policy) as tctx:
        with pytest.raises(exceptions.OptionsError, match=rf"{bad}:\d+: rules.0.lists.0: unknown list 'nowhere'"):
            tctx.configure(policy, gateway_policy=str(bad))


def test_names_are_decided_in_a_fixed_order_so_ties_never_depend_on_the_hash_seed(gateway):
    """Destination and Host header both blocked by different rules: the destination's rule is named, every time."""
    _, identity, enforcer, _ = gateway
    for _ in range(20):
        flow = request("www.facebook.com")
        flow.request.headers["host"] = "www.tiktok.com"
        run(identity, enforcer, flow)
        assert flow_state(flow).decision.rule == "social-media-named"
        flow = request("www.tiktok.com")
        flow.request.headers["host"] = "www.facebook.com"
        run(identity, enforcer, flow)
        assert flow_state(flow).decision.rule == "social-media-pupils-staff"
