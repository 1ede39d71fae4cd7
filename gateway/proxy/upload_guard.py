"""Refuses images and video sent to social media, except by the staff who run the school's accounts from a
school-owned device the headteacher approved; logs every such upload, posted or refused, for the DPO.

Place after the enforcer: only requests it allowed are looked at, and only bodies (POST, PUT, PATCH) to a host on
the lists the policy's `uploads:` section names, by any name the request carries (destination, Host header, TLS
server name). Who may post is known at the headers; what is posted once the body has arrived (mitmproxy holds it
then, and nothing has gone upstream): `gateway.content.uploads` reads the Content-Type, the form parts and the
first bytes, so a photo sent as application/octet-stream is still a photo. A refused upload gets the block page.

A body mitmproxy streams (over `stream_large_bodies`, or of unknown length while that is set) cannot be held to be
read, so it is decided at its headers: passed for a school account holder on an approved device (logged), refused
for anyone else by closing the request before any of it goes upstream. mitmproxy cannot answer a request with a
page until it has taken the whole body, and holding it is what streaming is there to avoid.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from mitmproxy import ctx, http

from gateway.content.uploads import Media, Unreadable, find_media, media_in_headers
from gateway.decisions.types import Action, Decision, Source
from gateway.identity.people import Device
from gateway.policy.compiled import CompiledPolicy
from gateway.proxy.block_response import block
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.flow_state import FlowState, flow_state
from gateway.proxy.identity import identity_of
from gateway.proxy.identity_sources import IdentitySources
from gateway.proxy.policy_source import PolicySource
from gateway.proxy.request_host import every_name

log = logging.getLogger(__name__)

KEY = "gateway_upload"
RULE = "uploads"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
NOT_PERMITTED = "not_permitted"
DEVICE_NOT_APPROVED = "device_not_approved"
TOO_LARGE = "too_large"
REASONS = {
    NOT_PERMITTED: "Photos and videos cannot be posted to social media from the school network: only the staff who "
    "run the school's own accounts post them.",
    DEVICE_NOT_APPROVED: "Photos and videos for the school's accounts are posted only from a school-owned device the "
    "headteacher has approved.",
    TOO_LARGE: "This upload to social media was too large to check, so it was not sent.",
}


@dataclass(slots=True)
class UploadSeen:
    """One request to a controlled host: who sent it and, once known, what it carried and what became of it."""

    permitted: bool
    device_approved: bool
    outcome: str | None = None
    refusal: str | None = None
    media: str | None = None
    detected_by: str | None = None
    filename: str | None = None
    bytes: int | None = None

    @property
    def may_post(self) -> bool:
        return self.permitted and self.device_approved

    def settle(self, media: Media) -> None:
        self.media, self.detected_by, self.filename = media.media, media.detected_by, media.filename
        if self.may_post:
            self.outcome = "posted"
        else:
            self.outcome = "refused"
            self.refusal = DEVICE_NOT_APPROVED if self.permitted else NOT_PERMITTED

    def as_row_value(self) -> dict[str, Any]:
        value = asdict(self)
        del value["permitted"], value["device_approved"]
        return value


def upload_seen(flow: http.HTTPFlow) -> UploadSeen | None:
    """The upload on this flow, once it is known to carry an image or video (for the access log's row)."""
    seen = flow.metadata.get(KEY)
    return seen if seen is not None and seen.outcome is not None else None


@dataclass(frozen=True, slots=True)
class UploadScope:
    """The running policy's `uploads:` section, compiled: which lists' hosts are controlled, who may post."""

    mask: int
    accounts: frozenset[str]

    @classmethod
    def of(cls, compiled: CompiledPolicy) -> UploadScope:
        uploads = compiled.policy.uploads
        if not uploads.enabled:
            return cls(0, frozenset())
        bits = {name: 1 << i for i, name in enumerate(compiled.names)}
        unknown = [name for name in uploads.lists if name not in compiled.policy.lists]
        if unknown:
            log.error("uploads.lists names lists the policy does not define: %s", ", ".join(unknown))
        return cls(sum(bits[n] for n in uploads.lists if n in bits), frozenset(uploads.school_accounts))

    def controls(self, compiled: CompiledPolicy, host: str | None) -> bool:
        if not self.mask or not host:
            return False
        return any(mask & self.mask for _, mask in compiled.domains.match(host))


class UploadGuard:
    def __init__(self, policy: PolicySource, guard: DestinationGuard, sources: IdentitySources) -> None:
        self.policy = policy
        self.guard = guard
        self.sources = sources
        self._scope: tuple[CompiledPolicy, UploadScope] | None = None
        self._devices: tuple[object, dict[str, Device]] | None = None
        # A copy of the option: `ctx.options.x` deep-copies the value on every read.
        self.streaming = False

    def configure(self, updated: set[str]) -> None:
        if "stream_large_bodies" in updated:
            self.streaming = bool(ctx.options.stream_large_bodies)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if request.method not in BODY_METHODS or flow.response is not None or flow.error is not None:
            return
        state = flow_state(flow)
        if state.decision is None or state.decision.blocked:
            return
        compiled = self.policy.current
        scope = self._scope_for(compiled)
        if not scope.mask or not any(scope.controls(compiled, h) for h in every_name(flow, state.host)):
            return
        length = request.headers.get("content-length", "")
        if length == "0":
            return
        identity = identity_of(flow, self.policy)
        seen = UploadSeen(permitted=identity.username is not None and identity.username in scope.accounts,
                          device_approved=self._approved(identity.device))  # fmt: skip
        seen.bytes = int(length) if length.isdigit() else None
        flow.metadata[KEY] = seen
        if request.stream or (self.streaming and not length.isdigit()):
            self._decide_unread(flow, state, seen)

    def request(self, flow: http.HTTPFlow) -> None:
        seen: UploadSeen | None = flow.metadata.get(KEY)
        if seen is None or seen.outcome is not None or flow.response is not None or flow.request.stream:
            return
        request = flow.request
        body = request.raw_content or b""
        seen.bytes = len(body)
        if not body:
            return
        encoding = request.headers.get("content-encoding", "").strip().lower()
        try:
            if encoding not in ("", "identity"):
                # Browsers never compress what they send: a compressed body is someone hiding what it holds.
                raise Unreadable(f"a body sent with Content-Encoding {encoding}")
            media = find_media(request.headers.get("content-type", ""), body)
        except Unreadable as e:
            log.info("upload to %s could not be read (%s): treated as an image or video", request.pretty_host, e)
            media = Media("unknown", "unreadable")
        if media is None:
            return
        seen.settle(media)
        if seen.outcome == "refused":
            self._refuse(flow, flow_state(flow), seen)

    def _decide_unread(self, flow: http.HTTPFlow, state: FlowState, seen: UploadSeen) -> None:
        declared = media_in_headers(flow.request.headers.get("content-type", ""))
        seen.settle(declared or Media("unknown", "not inspected"))
        if seen.may_post:
            return
        if declared is None and not seen.permitted:
            seen.refusal = TOO_LARGE
        self._set_decision(state, seen)
        # No page can be sent before mitmproxy has taken the whole body: the request is closed instead, and logged.
        flow.kill()

    def _refuse(self, flow: http.HTTPFlow, state: FlowState, seen: UploadSeen) -> None:
        decision = self._set_decision(state, seen)
        assert state.identity is not None and state.instant is not None
        block(flow, self.policy.current.policy, decision, state.identity, state.instant, self.guard.request_form)

    @staticmethod
    def _set_decision(state: FlowState, seen: UploadSeen) -> Decision:
        assert state.decision is not None
        reason = REASONS[seen.refusal or NOT_PERMITTED]
        state.decision = Decision(Action.BLOCK, Source.UPLOAD, reason, state.decision.period, state.decision.host,
                                  rule=RULE, matched=seen.media)  # fmt: skip
        return state.decision

    def _scope_for(self, compiled: CompiledPolicy) -> UploadScope:
        cached = self._scope
        if cached is None or cached[0] is not compiled:
            cached = self._scope = (compiled, UploadScope.of(compiled))
        return cached[1]

    def _approved(self, name: str | None) -> bool:
        live = self.sources.live
        if name is None or live is None:
            return False
        directory = live.resolver.directory
        cached = self._devices
        if cached is None or cached[0] is not directory:
            cached = self._devices = (directory, {d.name: d for d in directory.devices_by_mac.values()})
        device = cached[1].get(name)
        return device is not None and device.active and device.approved and not device.personal
