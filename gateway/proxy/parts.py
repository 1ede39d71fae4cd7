"""The gateway's addons, in order: what `mitmdump -s addons/gateway.py` and the gateway's own Master both run.

Order matters: identity first, then the parts that decide (portal, destinations, tunnels, enforcer), then the
access log. mitmproxy sees them as one addon (`AddonChain`), which keeps its per-event dispatch cheap and fails
closed when a part raises while deciding.
"""

from __future__ import annotations

from gateway.proxy.access_log import AccessLog
from gateway.proxy.age_gate import AgeGate
from gateway.proxy.audit_rows import AuditRows
from gateway.proxy.bans import BanKeeper
from gateway.proxy.cert_cache import CertCache
from gateway.proxy.chain import AddonChain
from gateway.proxy.circumvention_guard import BrowserSwitches, CircumventionGuard
from gateway.proxy.clock import Clock
from gateway.proxy.content_guard import ContentGuard
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.enforcer import Enforcer
from gateway.proxy.fail_closed import FailClosed
from gateway.proxy.flow_state import Connections
from gateway.proxy.grant_follower import GrantFollower
from gateway.proxy.identity import IdentityAddon
from gateway.proxy.identity_sources import IdentitySources
from gateway.proxy.metrics import Metrics
from gateway.proxy.policy_source import PolicySource
from gateway.proxy.portal import PortalAddon
from gateway.proxy.proxy_auth import ProxyAuthAddon
from gateway.proxy.radius_listener import RadiusListenerAddon
from gateway.proxy.safe_search import SafeSearch
from gateway.proxy.search_guard import SearchGuard
from gateway.proxy.selftest_route import SelftestRoute
from gateway.proxy.startup_gate import StartupGate
from gateway.proxy.store_options import StoreOptions
from gateway.proxy.transparent import TransparentDestination
from gateway.proxy.tunnels import TunnelGuard
from gateway.proxy.upload_guard import UploadGuard


def gateway_addons() -> list[object]:
    """A fresh set of the gateway's parts, wired together; each call makes new ones (one set per proxy)."""
    clock = Clock()
    audit = AuditRows()
    policy = PolicySource(audit)
    identity_sources = IdentitySources(policy)
    connections = Connections()
    destinations = DestinationGuard(policy)
    access_log = AccessLog(policy)
    bans = BanKeeper(identity_sources)
    grants = GrantFollower(policy, bans)
    selftest = SelftestRoute(policy)
    circumvention = CircumventionGuard(policy, destinations, connections)
    metrics = Metrics(policy, access_log, grants, bans, identity_sources)
    log_connection = metrics.counted(access_log.connection)

    return [
        StartupGate(),
        AddonChain(
            StoreOptions(),
            audit,
            CertCache(),
            clock,
            policy,
            identity_sources,
            bans,
            grants,
            RadiusListenerAddon(identity_sources),
            ProxyAuthAddon(identity_sources, audit),
            # Before every part that reads a request's host: in transparent mode it is the name asked for, not an IP.
            TransparentDestination(),
            selftest,
            IdentityAddon(policy, identity_sources),
            PortalAddon(policy),
            TunnelGuard(
                policy, clock, destinations, connections, log_connection, identity_sources.identify, grants,
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
            # After the tunnel guard and the enforcer: a pupil below a site's minimum age is kept from its sign-up
            # pages (or, as the policy says, the whole site: its CONNECTs and passed-through connections too).
            AgeGate(policy, destinations, connections, log_connection),
            # Last of the request guards: only requests every part allowed get safe search and the sign-in locks.
            SafeSearch(policy),
            # After the enforcer: only what it allowed is scored; before the access log, which logs the finding.
            SearchGuard(policy, destinations),
            ContentGuard(policy, destinations),
            # Just before the access log: counts the decisions it is about to log.
            metrics,
            access_log,
            # Last: sends an allowed self-test request to its test origin once every part has decided.
            selftest.last,
            on_failure=metrics.failures(FailClosed(policy, clock, connections, access_log.response).handlers()),
            timers=metrics.timers(),
        ),
    ]
