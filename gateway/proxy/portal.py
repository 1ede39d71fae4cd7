"""Captive portal: on a network the policy marks sign-in required, a client nobody has identified is sent
to the gateway's sign-in page before anything else; requests to the sign-in page carry the client's real
address to the web app (which otherwise sees only the proxy)."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from mitmproxy import ctx, exceptions, http

from gateway.identity.types import IdentitySource
from gateway.lists.hosts import normalise_host
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity import CLIENT_IP_HEADER
from gateway.identity.portal_link import load_key, sign
from gateway.proxy.policy_source import PolicySource


class PortalAddon:
    requestheaders: Callable[[http.HTTPFlow], None] | None

    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy
        self._portal: tuple[str, int] | None = None
        self._base = ""
        self._link_key: bytes | None = None
        # mitmproxy calls only the hooks an addon has: with no portal configured, none per request.
        self.requestheaders = None

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_portal_url", str, "",
                          "The console's base URL, where unknown clients on sign-in-required networks are sent "
                          "to sign in (e.g. http://gateway.school:8080). Empty: no captive portal.")
        loader.add_option("gateway_portal_link_key", str, "",
                          "File with the key the portal checks the page a device is sent back to with (the "
                          "console's --portal-link-key-file). Empty: devices are not sent back after signing in.")

    def configure(self, updated: set[str]) -> None:
        if "gateway_portal_link_key" in updated:
            path = ctx.options.gateway_portal_link_key
            try:
                self._link_key = load_key(Path(path)) if path else None
            except (OSError, ValueError) as e:
                raise exceptions.OptionsError(f"gateway_portal_link_key: {e}") from None
        if "gateway_portal_url" in updated:
            base = ctx.options.gateway_portal_url.rstrip("/")
            if base:
                parts = urlsplit(base)
                port = parts.port or (443 if parts.scheme == "https" else 80)
                self._portal, self._base = (normalise_host(parts.hostname or "") or "", port), base
            else:
                self._portal, self._base = None, ""
            self.requestheaders = self._requestheaders if self._portal is not None else None

    def _requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        request = flow.request
        if (normalise_host(request.host), request.port) == self._portal:
            # The web app's only way to know the real client: every client's own copy was removed on arrival.
            request.headers[CLIENT_IP_HEADER] = flow.client_conn.peername[0]
            return
        identity = flow_state(flow).identity
        if identity is None or identity.source is not IdentitySource.SUBNET or identity.network is None:
            return
        network = next((n for n in self.policy.current.policy.networks if n.name == identity.network), None)
        if network is None or not network.sign_in_required:
            return
        url = request.pretty_url
        sign_in = f"{self._base}/portal/sign-in?next={quote(url, safe='')}"
        if self._link_key is not None:
            # Proof for the portal that this device was sent from this page (see gateway.identity.portal_link).
            sign_in += f"&next_sig={sign(self._link_key, flow.client_conn.peername[0], url, int(time.time()))}"
        if request.method in ("GET", "HEAD"):
            flow.response = http.Response.make(
                302, b"", {"Location": sign_in, "Cache-Control": "no-store", "Content-Type": "text/plain"}
            )
        else:
            # RFC 6585: tells non-browser clients why, with a link for a person.
            link = html.escape(sign_in, quote=True)
            flow.response = http.Response.make(
                511,
                f'<!doctype html><title>Sign in to the school network</title>'
                f'<p>Please <a href="{link}">sign in</a> to use the school network.</p>',
                {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
            )
