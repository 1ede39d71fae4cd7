"""Forces safe search and the sign-in locks on the requests the enforcer let through, for the client's group:
Google's `safe=active`, Bing's `adlt=strict` (and the ADLT setting in its SRCHHPGUSR cookie), DuckDuckGo's `kp=1`,
YouTube's restricted-mode header, and the headers that keep Google and Microsoft sign-in to the school's accounts.

Whatever the client sent under those names (`Safe=Off`, `safe=off` twice, `%73afe=off`, a forged
`YouTube-Restrict: none`) is replaced, never added to; HTTP/1 and HTTP/2 alike. A search form that posts its
fields has them forced in its body too.

Place after the enforcer (only allowed requests are rewritten). The plans are precompiled per policy and group
(`CompiledPolicy.services`): a request to any other host costs one dict lookup.
"""

from __future__ import annotations

from mitmproxy import http

from gateway.lists.hosts import normalise_host
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource
from gateway.services.plans import HostPlan
from gateway.services.rewrite import force_params, force_settings, normal_path, under

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


class SafeSearch:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        plan = self._plan(flow)
        if plan is None:
            return
        request = flow.request
        for name, value in plan.headers:
            # Replaces every header of that name, in any case.
            request.headers[name] = value
        if plan.params and self._on_path(plan, request):
            path, _, query = request.path.partition("?")
            request.path = f"{path}?{force_params(query, plan.params, plan.param_names)}"
        for cookie, settings in plan.cookies:
            values = request.cookies.get_all(cookie)
            if values:
                request.cookies.set_all(cookie, [force_settings(value, settings) for value in values])

    def request(self, flow: http.HTTPFlow) -> None:
        """A search form posted with its fields in the body: the body's fields are forced too."""
        request = flow.request
        if request.method != "POST" or not request.raw_content:
            return
        plan = self._plan(flow)
        if plan is None or not plan.params or not self._on_path(plan, request):
            return
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith(FORM):
            body = (request.content or b"").decode("latin-1")
            request.content = force_params(body, plan.params, plan.param_names).encode("latin-1")
        elif content_type.startswith(MULTIPART):
            fields = [(k, v) for k, v in request.multipart_form.items(multi=True)
                      if k.decode("latin-1").strip().lower() not in plan.param_names]  # fmt: skip
            fields += [(name.encode(), value.encode()) for name, value in plan.params]
            request.multipart_form = fields  # type: ignore[assignment]

    def _plan(self, flow: http.HTTPFlow) -> HostPlan | None:
        state = flow_state(flow)
        decision = state.decision
        if flow.response is not None or decision is None or decision.blocked:
            return None
        table = self.policy.current.services.for_group(identity_of(flow, self.policy).group)
        plan = table.get(state.host or "")
        if plan is not None:
            return plan
        # The Host header usually repeats the destination; when it names another host, that host's plan applies.
        request = flow.request
        authority = request.host_header
        if authority is None or authority == request.host:
            return None
        other = normalise_host(authority)
        return table.get(other) if other is not None else None

    @staticmethod
    def _on_path(plan: HostPlan, request: http.Request) -> bool:
        return plan.paths is None or under(normal_path(request.path), plan.paths)
