"""The school web gateway as a mitmproxy script: `mitmdump -s addons/gateway.py`.

It only lists the addons; each lives in `gateway.proxy`. Order matters: identity first, then the parts that
decide (portal, destinations, tunnels, enforcer), then the access log. mitmproxy sees them as one addon
(`AddonChain`), which keeps its per-event dispatch cheap and fails closed when a part raises while deciding.
"""

import sys
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.proxy.access_log import AccessLog  # noqa: E402
from gateway.proxy.age_gate import AgeGate  # noqa: E402
from gateway.proxy.bans import BanKeeper  # noqa: E402
from gateway.proxy.chain import AddonChain  # noqa: E402
from gateway.proxy.circumvention_guard import BrowserSwitches, CircumventionGuard  # noqa: E402
from gateway.proxy.clock import Clock  # noqa: E402
from gateway.proxy.content_guard import ContentGuard  # noqa: E402
from gateway.proxy.destination_guard import DestinationGuard  # noqa: E402
from gateway.proxy.enforcer import Enforcer  # noqa: E402
from gateway.proxy.fail_closed import FailClosed  # noqa: E402
from gateway.proxy.flow_state import Connections  # noqa: E402
from gateway.proxy.grant_follower import GrantFollower  # noqa: E402
from gateway.proxy.identity import IdentityAddon  # noqa: E402
from gateway.proxy.identity_sources import IdentitySources  # noqa: E402
from gateway.proxy.lean_proxy import LeanProxy  # noqa: E402
from gateway.proxy.policy_source import PolicySource  # noqa: E402
from gateway.proxy.portal import PortalAddon  # noqa: E402
from gateway.proxy.proxy_auth import ProxyAuthAddon  # noqa: E402
from gateway.proxy.radius_listener import RadiusListenerAddon  # noqa: E402
from gateway.proxy.safe_search import SafeSearch  # noqa: E402
from gateway.proxy.search_guard import SearchGuard  # noqa: E402
from gateway.proxy.selftest_route import SelftestRoute  # noqa: E402
from gateway.proxy.startup_gate import StartupGate  # noqa: E402
from gateway.proxy.store_options import StoreOptions  # noqa: E402
from gateway.proxy.transparent import TransparentDestination  # noqa: E402
from gateway.proxy.tunnels import TunnelGuard  # noqa: E402
from gateway.proxy.upload_guard import UploadGuard  # noqa: E402

clock = Clock()
policy = PolicySource()
identity_sources = IdentitySources(policy)
connections = Connections()
destinations = DestinationGuard(policy)
access_log = AccessLog(policy)
bans = BanKeeper(identity_sources)
grants = GrantFollower(policy, bans)
selftest = SelftestRoute(policy)
circumvention = CircumventionGuard(policy, destinations, connections)

addons = [
    StartupGate(),
    AddonChain(
        LeanProxy(),
        StoreOptions(),
        clock,
        policy,
        identity_sources,
        bans,
        grants,
        RadiusListenerAddon(identity_sources),
        ProxyAuthAddon(identity_sources),
        # Before every part that reads a request's host: in transparent mode it is the name asked for, not an IP.
        TransparentDestination(),
        selftest,
        IdentityAddon(policy, identity_sources),
        PortalAddon(policy),
        TunnelGuard(
            policy, clock, destinations, connections, access_log.connection, identity_sources.identify, grants,
            circumvention,
        ),
        destinations,
        Enforcer(policy, clock, destinations, connections, grants),
        # After the enforcer: blocks DoH, bare addresses, fronting, VPN clients (and marks workaround-list blocks)
        # as attempts to get round the filter; the access log records them.
        circumvention,
        BrowserSwitches(),
        # After the enforcer: images and video to social media from anyone but the school's accounts' staff on
        # approved devices (decided once the body has arrived, before anything goes upstream).
        UploadGuard(policy, destinations, identity_sources),
        # After the tunnel guard and the enforcer: a pupil below a site's minimum age is kept from its sign-up pages
        # (or, as the policy says, the whole site: its CONNECTs and passed-through connections too).
        AgeGate(policy, destinations, connections, access_log.connection),
        # Last of the request guards: only requests every part allowed get safe search and the sign-in locks.
        SafeSearch(policy),
        # After the enforcer: only what it allowed is scored; before the access log, which logs the finding.
        SearchGuard(policy, destinations),
        ContentGuard(policy, destinations),
        access_log,
        # Last: sends an allowed self-test request to its test origin once every part has decided.
        selftest.last,
        on_failure=FailClosed(policy, clock, connections, access_log.response).handlers(),
    )
]
