"""Self-test requests (`gateway selftest`): decided as the signed token's group, and answered by its test origin.

`SelftestRoute` comes before the identity part: it takes the `X-Gateway-Selftest` header out of every request (no
site ever sees it) and, for a token signed with the console's secret, gives the flow a self-test identity of the
token's group; a forged, expired or foreign token is logged and ignored, so the request is decided as whoever the
client really is. `SelftestDelivery` comes last, once every part has decided: it fetches an allowed self-test
request from the token's origin, a local test server, and answers with that, so mitmproxy never opens a connection
to the host the request names; the parts that look at responses (content analysis) see it as any other. The
decision is put on the response, so the self-test can tell a flag from an allow.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging

from mitmproxy import ctx, exceptions, http
from mitmproxy.net.http.http1.assemble import assemble_request
from mitmproxy.net.http.http1.read import read_response_head

from gateway.identity.types import Identity, IdentitySource
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity import client_ip
from gateway.proxy.policy_source import PolicySource
from gateway.selftest.token import HEADER, RESULT_HEADER, BadToken, SelftestToken, read, read_secret

log = logging.getLogger(__name__)

# flow.metadata key: the token of a self-test flow.
TOKEN = "gateway.selftest"
# Self-test pages are a few kilobytes; the origin is local and answers at once.
MAX_ORIGIN_BYTES = 1024 * 1024
ORIGIN_TIMEOUT_SECONDS = 10.0


class SelftestRoute:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy
        self.secret: str | None = None
        self.last = SelftestDelivery()

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "gateway_selftest_secret_file", str, "",
            "The console's secret file: `gateway selftest` tokens signed with it are honoured (none when empty).",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if "gateway_selftest_secret_file" in updated:
            path = ctx.options.gateway_selftest_secret_file
            try:
                self.secret = (read_secret(path) or None) if path else None
            except OSError as exc:
                raise exceptions.OptionsError(f"gateway_selftest_secret_file: {exc}") from None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        text = flow.request.headers.pop(HEADER, None)
        if text is None:
            return
        token = self._honoured(flow, text)
        if token is None:
            return
        flow.metadata[TOKEN] = token
        flow_state(flow).identity = Identity(
            group=token.group, client_ip=client_ip(flow), source=IdentitySource.SELFTEST, username="selftest",
            display_name="Filter self-test", year_group=token.year_group, device="selftest",
        )  # fmt: skip

    def _honoured(self, flow: http.HTTPFlow, text: str) -> SelftestToken | None:
        if self.secret is None:
            log.warning("ignored a self-test token from %s: this gateway has no self-test secret", client_ip(flow))
            return None
        try:
            token = read(self.secret, text)
        except BadToken as exc:
            log.warning("ignored a self-test token from %s: %s", client_ip(flow), exc)
            return None
        if token.group not in self.policy.current.policy.groups:
            log.warning("ignored a self-test token from %s: unknown group %r", client_ip(flow), token.group)
            return None
        if not _local_origin(token.origin_host):
            log.warning("ignored a self-test token from %s: origin %s is not a local address", client_ip(flow),
                        token.origin_host)  # fmt: skip
            return None
        return token


class SelftestDelivery:
    """The part of `SelftestRoute` that must run after every part that decides."""

    async def request(self, flow: http.HTTPFlow) -> None:
        token: SelftestToken | None = flow.metadata.get(TOKEN)
        if token is None or flow.response is not None or flow.error is not None:
            return
        try:
            flow.response = await asyncio.wait_for(fetch(token.origin, flow.request), ORIGIN_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("the self-test origin %s:%d did not answer: %s", *token.origin, exc or type(exc).__name__)
            flow.response = http.Response.make(502, b"The self-test server did not answer.",
                                               {"Content-Type": "text/plain"})  # fmt: skip

    def response(self, flow: http.HTTPFlow) -> None:
        if TOKEN not in flow.metadata or flow.response is None:
            return
        decision = flow_state(flow).decision
        result = decision.as_dict() if decision is not None else {"action": "none"}
        result.pop("reason", None)
        result["token"] = flow.metadata[TOKEN].digest
        flow.response.headers[RESULT_HEADER] = json.dumps(result)


async def fetch(origin: tuple[str, int], request: http.Request) -> http.Response:
    """The origin's answer to `request`, asked over HTTP/1.0 so the origin sends a plain body and closes."""
    outgoing = request.copy()
    outgoing.http_version = "HTTP/1.0"
    outgoing.authority = ""
    outgoing.headers["Connection"] = "close"
    reader, writer = await asyncio.open_connection(*origin)
    try:
        writer.write(assemble_request(outgoing))
        await writer.drain()
        data = bytearray()
        while chunk := await reader.read(64 * 1024):
            data += chunk
            if len(data) > MAX_ORIGIN_BYTES:
                raise ValueError("the answer is larger than a self-test page")
    finally:
        writer.close()
    head, found, body = bytes(data).partition(b"\r\n\r\n")
    if not found:
        raise ValueError("no HTTP answer")
    response = read_response_head(head.split(b"\r\n"))
    if "chunked" in response.headers.get("transfer-encoding", "").lower():
        raise ValueError("a chunked answer")
    response.raw_content = body
    # The client asked on its own connection and protocol; the origin's closing answer speaks for neither.
    response.http_version = request.http_version
    response.headers.pop("Connection", None)
    return response


def _local_origin(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private
