"""The impact preview page: before a grant is made, what it would have let through over the last week of the log.

For the officer and the headteacher only (they triage and approve); the figures are counts and hosts, with no
one named. Each preview is audited like any other look at the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Blueprint, render_template, request

from gateway.decisions.impact import RefusedGrant, proposed_grant
from gateway.decisions.types import PeriodKind
from gateway.policy.loader import PolicyError
from gateway.store.impact_rows import DEFAULT_DAYS, preview_from_log
from gateway.web.audit_trail import audit
from gateway.web.console_policy import console_policy
from gateway.web.roles import Permission, require

blueprint = Blueprint("impact", __name__, url_prefix="/impact")

# Longest free-text field read, so a pasted essay is an error rather than a slow page.
MAX_FIELD = 2000


@dataclass
class GrantForm:
    """The preview form as typed, kept so a refused form comes back as the user left it."""

    lists: list[str] = field(default_factory=list)
    domains: str = ""
    groups: list[str] = field(default_factory=list)
    classes: str = ""
    year_groups: str = ""
    users: str = ""
    periods: list[str] = field(default_factory=list)
    action: str = "allow"

    @classmethod
    def from_args(cls, args) -> GrantForm:  # type: ignore[no-untyped-def]
        return cls(lists=args.getlist("lists"), domains=args.get("domains", ""), groups=args.getlist("groups"),
                   classes=args.get("classes", ""), year_groups=args.get("year_groups", ""),
                   users=args.get("users", ""), periods=args.getlist("periods"),
                   action=args.get("action", "allow"))  # fmt: skip

    def scope(self) -> dict[str, object]:
        """The form as ExceptionGrant fields; RefusedGrant when a field is too long or a year group not a number."""
        for name in ("domains", "classes", "year_groups", "users"):
            if len(getattr(self, name)) > MAX_FIELD:
                raise RefusedGrant(f"{name.replace('_', ' ')}: at most {MAX_FIELD} characters")
        years = _items(self.year_groups)
        if not all(y.isascii() and y.isdigit() and len(y) <= 2 for y in years):
            raise RefusedGrant(f"year groups: whole numbers, not {self.year_groups[:40]!r}")
        return {
            "lists": self.lists, "domains": _items(self.domains), "groups": self.groups or None,
            "classes": _items(self.classes) or None, "year_groups": [int(y) for y in years] or None,
            "users": [u.lower() for u in _items(self.users)] or None, "periods": self.periods or None,
            "action": self.action,
        }  # fmt: skip


def _items(text: str) -> list[str]:
    return [item for item in text.replace(",", " ").split() if item]


@blueprint.route("")
@require(Permission.PREVIEW_IMPACT)
def index():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    try:
        compiled = console_policy()
    except (OSError, PolicyError) as exc:
        return render_template("impact.html", form=GrantForm(), problem=f"The policy file cannot be read: {exc}"), 500
    if compiled is None:
        problem = "The console was started without the policy file (--policy), so it cannot replay the log."
        return render_template("impact.html", form=GrantForm(), problem=problem)
    liftable = [name for i, name in enumerate(compiled.names)
                if name in compiled.policy.lists and not (1 << i) & compiled.unliftable_mask]  # fmt: skip
    choices = {"lists": liftable, "groups": list(compiled.policy.groups), "periods": [p.value for p in PeriodKind]}
    if not request.args:
        return render_template("impact.html", form=GrantForm(), days=DEFAULT_DAYS, **choices)
    form = GrantForm.from_args(request.args)
    try:
        scope = form.scope()
        extra = proposed_grant(compiled, **scope)
    except RefusedGrant as exc:
        return render_template("impact.html", form=form, refused=str(exc), days=DEFAULT_DAYS, **choices), 400
    audit("preview_impact", target="access_log", detail={"days": DEFAULT_DAYS, **scope})
    result = preview_from_log(db(), compiled, extra, now=datetime.now(UTC))
    return render_template("impact.html", form=form, result=result, days=DEFAULT_DAYS, **choices)
