"""Proxy authentication for explicitly configured devices (shared desktops, staff laptops set to use the
proxy): HTTP Basic checked against the roster, or LDAP / Active Directory (spec as mitmproxy's `proxyauth`).

Unlike mitmproxy's `proxyauth` option, which applies to every client, this asks only the listed addresses,
and checks credentials in a worker thread so argon2 or an LDAP round trip never holds up the event loop.
Wrong passwords are limited per device and per device and account across every worker on the machine
(`gateway.identity.attempt_limits`, `sign_in_failures`): over the limit the proxy answers 407 with the reason and
does not ask the roster or the directory at all. Wrong passwords and refusals go to the audit trail as one row per
device and account per window (`gateway.identity.sign_in_reports`), through the proxy's audit outbox.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.addons.proxyauth import Ldap, make_auth_required_response, parse_http_basic_auth

from gateway.identity.attempt_limits import AttemptLimits, Refusal
from gateway.identity.ldap_auth import LdapSettings, LdapUnavailable, LdapValidator
from gateway.identity.proxy_auth import RosterValidator
from gateway.identity.sign_in_failures import SignInFailures
from gateway.identity.sign_in_reports import Report, SignInReports
from gateway.proxy.audit_rows import AuditRows
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity_sources import IdentitySources
from gateway.store.engine import make_engine, session_factory

log = logging.getLogger(__name__)

Validator = Callable[[str, str], bool]

# At most one warning this often while the directory is away: every request would otherwise log one.
UNAVAILABLE_WARNING_SECONDS = 60.0
# Seconds between looks for sign-in report windows that have ended.
REPORT_INTERVAL = 1.0
REFUSED = {
    Refusal.DEVICE: "Too many wrong passwords from this computer. Wait {minutes} minutes and try again.",
    Refusal.ACCOUNT: "Too many wrong passwords for this account from this computer. Wait {minutes} minutes, or sign "
                     "in from another computer.",
}


class ProxyAuthAddon:
    http_connect: Callable[[http.HTTPFlow], Awaitable[None]] | None
    requestheaders: Callable[[http.HTTPFlow], Awaitable[None]] | None

    def __init__(self, sources: IdentitySources, audit: AuditRows) -> None:
        self.sources = sources
        self.audit = audit
        self.reports: SignInReports | None = None
        self._reporter: asyncio.Task[None] | None = None
        self.validator: Validator | None = None
        self.clients: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        # Connections that authenticated with CONNECT: the requests inside the tunnel carry no header.
        self.authenticated: MutableMapping[connection.Client, str] = weakref.WeakKeyDictionary()
        self._engine = None
        self._warned_at = float("-inf")
        self.failures: SignInFailures | None = None
        # When each refused device was last logged, so a guesser's refusals make one line per window.
        self._refusals_logged: dict[tuple[str, Refusal], float] = {}
        self._set_hooks()

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_proxy_auth", str, "",
                          "Proxy authentication for gateway_proxy_auth_clients: 'roster' (portal passwords) or "
                          "an LDAP spec as mitmproxy's proxyauth takes (ldap[s]:host[:port]:bind_dn:password:"
                          "subtree[?search_filter_key=...], e.g. search_filter_key=sAMAccountName for Active "
                          "Directory); empty: off.")
        loader.add_option("gateway_proxy_auth_ldap_ca", str, "",
                          "CA certificates (PEM file) that sign the directory's certificate for ldaps:; "
                          "empty: the system's. The certificate is always checked.")
        loader.add_option("gateway_proxy_auth_clients", str, "",
                          "Comma-separated client addresses or networks that must authenticate to the proxy.")
        loader.add_option("gateway_proxy_auth_window_seconds", int, int(AttemptLimits().window),
                          "Wrong proxy passwords are counted over this many seconds per device (10 stop its "
                          "sign-ins) and over three times as long per device and account (5 stop that device "
                          "trying that account), across every worker sharing gateway_spool.")

    def configure(self, updated: set[str]) -> None:
        if not {"gateway_proxy_auth", "gateway_proxy_auth_clients", "gateway_proxy_auth_ldap_ca",
                "gateway_proxy_auth_window_seconds", "gateway_spool"} & updated:
            return
        if self.failures is None or {"gateway_proxy_auth_window_seconds", "gateway_spool"} & updated:
            window = ctx.options.gateway_proxy_auth_window_seconds
            if window <= 0:
                raise exceptions.OptionsError("gateway_proxy_auth_window_seconds must be more than 0")
            if self.failures is not None:
                self.failures.close()
            self.failures = SignInFailures(Path(ctx.options.gateway_spool), AttemptLimits(window=float(window)))
            self.reports = SignInReports(float(window))
        spec = ctx.options.gateway_proxy_auth
        try:
            self.clients = [ipaddress.ip_network(c.strip(), strict=False)
                            for c in ctx.options.gateway_proxy_auth_clients.split(",") if c.strip()]
        except ValueError as e:
            raise exceptions.OptionsError(f"gateway_proxy_auth_clients: {e}") from None
        if not spec:
            self.validator = None
        elif spec == "roster":
            if self._engine is None:
                self._engine = make_engine(ctx.options.gateway_db)
            self.validator = RosterValidator(session_factory(self._engine))
        elif spec.startswith("ldap"):
            # Parsed only: the directory is first asked when someone signs in, in a worker thread.
            use_ssl, host, port, bind_dn, bind_password, subtree, filter_key = Ldap.parse_spec(spec)
            ca_file = ctx.options.gateway_proxy_auth_ldap_ca or None
            if ca_file is not None and not Path(ca_file).is_file():
                raise exceptions.OptionsError(f"gateway_proxy_auth_ldap_ca: no such file: {ca_file}")
            self.validator = LdapValidator(LdapSettings(
                host=host, port=port, use_ssl=use_ssl, bind_dn=bind_dn, bind_password=bind_password,
                subtree=subtree, filter_key=filter_key, ca_file=ca_file,
            ))
        else:
            raise exceptions.OptionsError("gateway_proxy_auth must be 'roster' or an ldap[s]: spec")
        self._set_hooks()

    def _set_hooks(self) -> None:
        # mitmproxy calls only the hooks an addon has: with proxy authentication off (the usual case) this addon
        # costs no call, and no coroutine, per request.
        on = self.validator is not None and bool(self.clients)
        self.http_connect = self._http_connect if on else None
        self.requestheaders = self._requestheaders if on else None

    def running(self) -> None:
        self._reporter = asyncio.get_running_loop().create_task(self._report_ended())

    async def done(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
        if self.reports is not None:
            # Windows still open are recorded with what they have counted so far.
            await self._record(self.reports.all())
            await self.audit.delivered()
        if self._engine is not None:
            self._engine.dispose()
        if self.failures is not None:
            self.failures.close()

    async def _report_ended(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            if self.reports is not None:
                await self._record(self.reports.ended(time.monotonic()))

    async def _record(self, reports: list[Report]) -> None:
        if not reports or not self.audit.on:
            return
        site = self.sources.policy.current.policy.school.site
        rows = [self.audit.row("proxy_sign_in_failed", policy_site=site, target=r.target, detail=r.detail(),
                               client_ip=r.address) for r in reports]  # fmt: skip
        try:
            await asyncio.to_thread(self.audit.keep, rows)
        except OSError as e:
            log.error("proxy authentication: %d audit row(s) of failed sign-ins lost: %s", len(rows), e)
            return
        self.audit.deliver()

    def _address(self, flow: http.HTTPFlow) -> str | None:
        """The device's address (the connection's, never a header's) if it must authenticate."""
        if self.validator is None or not self.clients:
            return None
        try:
            address = ipaddress.ip_address(flow.client_conn.peername[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return str(address) if any(address in net for net in self.clients) else None

    async def _authenticate(self, flow: http.HTTPFlow, address: str) -> str | Refusal | None:
        """The username, or why this device may not try now, or None for credentials that are missing or wrong."""
        assert self.validator is not None and self.failures is not None
        try:
            _, username, password = parse_http_basic_auth(flow.request.headers.get("Proxy-Authorization", ""))
        except ValueError:
            return None
        failures, reports = self.failures, self.reports
        assert reports is not None
        if failures.proven(address, username, password):
            ok = await self._check(username, password)
            if not ok:
                failures.forget(address, username, password)
                if ok is False:
                    reports.wrong(address, username, time.monotonic())
                return None
        else:
            verdict = await asyncio.to_thread(failures.attempt, address, username)
            if verdict.refusal is not None:
                self._log_refusal(address, username, verdict.refusal)
                reports.refused(address, username, verdict.refusal, time.monotonic())
                return verdict.refusal
            assert verdict.ticket is not None
            if verdict.delay:
                await asyncio.sleep(verdict.delay)
            ok = await self._check(username, password)
            if ok is None:
                await asyncio.to_thread(failures.unchecked, verdict.ticket)
            if not ok:
                if ok is False:
                    reports.wrong(address, username, time.monotonic())
                return None
            await asyncio.to_thread(failures.succeeded, verdict.ticket, password)
        del flow.request.headers["Proxy-Authorization"]
        return username.strip().lower()

    async def _check(self, username: str, password: str) -> bool | None:
        """Whether the password is right; None when it could not be checked."""
        assert self.validator is not None
        try:
            return await asyncio.to_thread(self.validator, username, password)
        except LdapUnavailable as e:
            now = time.monotonic()
            if now - self._warned_at >= UNAVAILABLE_WARNING_SECONDS:
                self._warned_at = now
                log.warning("proxy authentication: the directory cannot check passwords, so everyone is asked "
                            "again: %s", e)
            return None
        except Exception:
            log.exception("proxy authentication: checking credentials for %r failed", username)
            return None

    def _log_refusal(self, address: str, username: str, refusal: Refusal) -> None:
        assert self.failures is not None
        now, key = time.monotonic(), (address, refusal)
        if now - self._refusals_logged.get(key, float("-inf")) < self.failures.limits.refused_for(refusal):
            return
        if len(self._refusals_logged) > 10_000:
            self._refusals_logged = {k: t for k, t in self._refusals_logged.items()
                                     if now - t < self.failures.limits.refused_for(k[1])}
        self._refusals_logged[key] = now
        log.warning("proxy authentication: %s refused, too many wrong passwords from this %s (last tried %r); "
                    "the directory is not asked until the limit's window has passed", address, refusal, username)

    def _refuse(self, flow: http.HTTPFlow, refusal: Refusal | None) -> None:
        response = make_auth_required_response(True)
        if refusal is not None:
            assert self.failures is not None
            minutes = max(1, round(self.failures.limits.refused_for(refusal) / 60))
            response.text = REFUSED[refusal].format(minutes=minutes)
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
        flow.response = response

    async def _http_connect(self, flow: http.HTTPFlow) -> None:
        address = self._address(flow)
        if address is None:
            return
        outcome = await self._authenticate(flow, address)
        if outcome is None or isinstance(outcome, Refusal):
            self._refuse(flow, outcome)
        else:
            self.authenticated[flow.client_conn] = outcome
            flow_state(flow).proxy_user = outcome

    async def _requestheaders(self, flow: http.HTTPFlow) -> None:
        address = self._address(flow)
        if address is None or flow.response is not None:
            return
        outcome: str | Refusal | None = self.authenticated.get(flow.client_conn)
        if outcome is None:
            outcome = await self._authenticate(flow, address)
        if outcome is None or isinstance(outcome, Refusal):
            self._refuse(flow, outcome)
            return
        flow_state(flow).proxy_user = outcome
