"""The response that carries a block: the block page for a page, a short text for anything else."""

from __future__ import annotations

import logging
from datetime import datetime

from mitmproxy import http

from gateway.decisions.types import Decision
from gateway.identity.types import Identity
from gateway.policy.model import Policy
from gateway.proxy.blockpage import BlockNotice, render_block_page, render_block_text
from gateway.store.request_outcomes import RequestOutcome

log = logging.getLogger(__name__)

PAGE_DESTINATIONS = {"document", "iframe", "frame", "embed", "object"}
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def wants_page(request: http.Request) -> bool:
    dest = request.headers.get("sec-fetch-dest")
    if dest is not None:
        return dest in PAGE_DESTINATIONS
    return "text/html" in request.headers.get("accept", "")


def block(flow: http.HTTPFlow, policy: Policy, decision: Decision, identity: Identity, instant: datetime,
          request_url: str | None = None, earlier: RequestOutcome | None = None) -> None:  # fmt: skip
    """Answer with the block page. Its "Ask for access" link goes to the policy's `school.request_url`, else to
    `request_url` (the gateway's own request form), else the page names whom to ask. `earlier` is the person's
    latest request about the site, whose outcome the page tells them."""
    notice = block_notice(flow, policy, decision, identity, instant, request_url, earlier)
    if wants_page(flow.request):
        body, content_type = render_block_page(notice), "text/html; charset=utf-8"
    else:
        body, content_type = render_block_text(notice), "text/plain; charset=utf-8"
    flow.response = http.Response.make(403, body, {"Content-Type": content_type, **HEADERS})
    log.info(
        "blocked %s for %s (%s): rule=%s list=%s period=%s source=%s ref=%s",
        decision.host, identity.client_ip, identity.group, decision.rule, decision.list, decision.period,
        decision.source, notice.reference,
    )  # fmt: skip


def block_notice(flow: http.HTTPFlow, policy: Policy, decision: Decision, identity: Identity, instant: datetime,
                 request_url: str | None = None, earlier: RequestOutcome | None = None) -> BlockNotice:  # fmt: skip
    """What the block page says about this flow (see `block`)."""
    school = policy.school
    listed = policy.lists.get(decision.list) if decision.list else None
    return BlockNotice(
        decision=decision,
        identity=identity,
        url=flow.request.pretty_url,
        instant=instant,
        school=school.name,
        contact=school.contact,
        request_url=school.request_url or request_url,
        reference=flow.id[:8],
        list_description=listed.description if listed else "",
        earlier=earlier,
        # The gateway's own pages: its report form sits beside its request form.
        report_url=f"{request_url.removesuffix('/request')}/report" if request_url else None,
    )


def refuse(flow: http.HTTPFlow, status: int, text: str) -> None:
    """A short plain answer where no page can be shown (a CONNECT, an unreadable request)."""
    flow.response = http.Response.make(status, text + "\n", {"Content-Type": "text/plain; charset=utf-8", **HEADERS})
