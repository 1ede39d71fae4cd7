"""The `interception:` section: which hosts a group's HTTPS reaches without the gateway decrypting it.

Intercepting TLS is what lets the gateway see paths, pages and search terms, and it is most of what a connection
costs. Hosts the school trusts for a group (the e-learning platforms staff use all day, say) need none of that:
their connections are decided on the TLS server name, relayed untouched and logged by host. This is what
`never_intercept` does for everyone (banking, health, pinned apps); `pass_through` says it per group.

Passing a host through means nothing inside its connections is seen: no page or search-term analysis, no path, no
request header. So a pass-through is refused at load where the policy asks the gateway to look inside for that
group (safe search and sign-in locks, age-gated sign-up pages, upload control, the illegal-content slot, the
circumvention workaround lists, lists of paths), and the proxy still intercepts any host that is on such a list or
has a path entry the group's rules use (`gateway.policy.interception`). Content analysis is what the section opts
out of, by its meaning: a school lists here only hosts whose pages it does not need analysed for that group.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.policy.model_base import Domain, Name, Strict


class PassThrough(Strict):
    # The groups whose connections to these hosts pass through; a group not named here is intercepted as usual.
    groups: list[Name] = Field(min_length=1)
    lists: list[Name] = []
    domains: list[Domain] = []

    @model_validator(mode="after")
    def _has_hosts(self) -> PassThrough:
        if not self.lists and not self.domains:
            raise ValueError("a pass-through must name lists or domains")
        return self


class Interception(Strict):
    pass_through: list[PassThrough] = []
