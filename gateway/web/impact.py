"""The impact preview pages: before a grant is made, or a rule or list change written into the policy, what it
would have changed over the last week of the log.

For the officer and the headteacher only (they triage and approve); the figures are counts and hosts, with no
one named, over the log of the sites the account may see. Each preview is audited like any other look at the log.
The console never writes the policy file: a proposed change is shown with the edit that would make it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Blueprint, render_template, request

from gateway.decisions.impact import RefusedGrant, proposed_grant
from gateway.decisions.types import Action, PeriodKind
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.loader import PolicyError
from gateway.policy.proposed_change import (AddRule, AddToList, DropRule, PolicyChange, RefusedChange,
                                            RemoveFromList, SetRuleAction, action_of, domains_of, new_rule,
                                            propose)  # fmt: skip
from gateway.store.change_preview import preview_change
from gateway.store.impact_rows import DEFAULT_DAYS, preview_from_log
from gateway.web import sites
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


def _running(template: str, form: object) -> CompiledPolicy | tuple[str, int]:
    """The console's policy, or the page saying why there is none."""
    try:
        compiled = console_policy()
    except (OSError, PolicyError) as exc:
        return render_template(template, form=form, problem=f"The policy file cannot be read: {exc}"), 500
    if compiled is None:
        problem = "The console was started without the policy file (--policy), so it cannot replay the log."
        return render_template(template, form=form, problem=problem), 200
    return compiled


@blueprint.route("")
@require(Permission.PREVIEW_IMPACT)
def index():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    compiled = _running("impact.html", GrantForm())
    if not isinstance(compiled, CompiledPolicy):
        return compiled
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
    result = preview_from_log(db(), compiled, extra, now=datetime.now(UTC), sites=sites.allowed())
    return render_template("impact.html", form=form, result=result, days=DEFAULT_DAYS, **choices)


CHANGE_KINDS = {
    "add_to_list": "Add sites to a list",
    "remove_from_list": "Take sites off a list",
    "add_rule": "Add a rule",
    "rule_action": "Change a rule's action",
    "drop_rule": "Remove a rule",
}
# A rule's reason is shown on the block page: a sentence, not an essay.
MAX_REASON = 300


@dataclass
class ChangeForm:
    """The proposed rule or list change as typed."""

    kind: str = "add_to_list"
    list_name: str = ""
    domains: str = ""
    rule: str = ""
    action: str = "block"
    rule_id: str = ""
    rule_lists: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    periods: list[str] = field(default_factory=list)
    year_groups: str = ""
    position: str = "last"
    reason: str = ""

    @classmethod
    def from_args(cls, args) -> ChangeForm:  # type: ignore[no-untyped-def]
        return cls(kind=args.get("kind", ""), list_name=args.get("list", ""), domains=args.get("domains", ""),
                   rule=args.get("rule", ""), action=args.get("action", ""), rule_id=args.get("rule_id", ""),
                   rule_lists=args.getlist("rule_lists"), groups=args.getlist("groups"),
                   periods=args.getlist("periods"), year_groups=args.get("year_groups", ""),
                   position=args.get("position", "last"), reason=args.get("reason", ""))  # fmt: skip

    def change(self) -> PolicyChange:
        """The change the form describes; RefusedChange when a field is missing, too long or not valid."""
        for name in ("list_name", "domains", "rule", "action", "rule_id", "year_groups", "position"):
            if len(getattr(self, name)) > MAX_FIELD:
                raise RefusedChange(f"{name.replace('_', ' ')}: at most {MAX_FIELD} characters")
        if len(self.reason) > MAX_REASON:
            raise RefusedChange(f"reason: at most {MAX_REASON} characters")
        match self.kind:
            case "add_to_list" | "remove_from_list":
                if not self.list_name:
                    raise RefusedChange("choose a list")
                kind = AddToList if self.kind == "add_to_list" else RemoveFromList
                return kind(self.list_name, domains_of(self.domains))
            case "rule_action" | "drop_rule":
                if not self.rule:
                    raise RefusedChange("choose a rule")
                if self.kind == "drop_rule":
                    return DropRule(self.rule)
                return SetRuleAction(self.rule, action_of(self.action))
            case "add_rule":
                return self.added_rule()
        raise RefusedChange(f"kind: one of {', '.join(CHANGE_KINDS)}")

    def added_rule(self) -> AddRule:
        years = _items(self.year_groups)
        if not all(y.isascii() and y.isdigit() and len(y) <= 2 for y in years):
            raise RefusedChange(f"year groups: whole numbers, not {self.year_groups[:40]!r}")
        if self.position not in ("first", "last"):
            raise RefusedChange("position: first or last")
        if not self.reason.strip():
            raise RefusedChange("reason: a rule needs one (the block page shows it)")
        domains = domains_of(self.domains) if self.domains.strip() else ()
        rule = new_rule(id=self.rule_id.strip(), lists=self.rule_lists, domains=list(domains),
                        groups=self.groups or None, periods=self.periods or None,
                        year_groups=[int(y) for y in years] or None, action=action_of(self.action),
                        reason=self.reason.strip())  # fmt: skip
        return AddRule(rule, first=self.position == "first")


@blueprint.route("/change")
@require(Permission.PREVIEW_IMPACT)
def change():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    compiled = _running("impact_change.html", ChangeForm())
    if not isinstance(compiled, CompiledPolicy):
        return compiled
    policy = compiled.policy
    choices = {"kinds": CHANGE_KINDS, "lists": list(policy.lists), "rules": [r.id for r in policy.rules],
               "groups": list(policy.groups), "periods": [p.value for p in PeriodKind],
               "actions": [a.value for a in Action], "days": DEFAULT_DAYS,
               "policy_path": compiled.loaded.path}  # fmt: skip
    if not request.args:
        return render_template("impact_change.html", form=ChangeForm(), **choices)
    form = ChangeForm.from_args(request.args)
    try:
        proposed = propose(compiled, [form.change()])
    except RefusedChange as exc:
        return render_template("impact_change.html", form=form, refused=str(exc), **choices), 400
    audit("preview_policy_change", target="access_log",
          detail={"days": DEFAULT_DAYS, "change": list(proposed.summary)})
    result = preview_change(db(), compiled, proposed, now=datetime.now(UTC), sites=sites.allowed())
    return render_template("impact_change.html", form=form, result=result, edits=proposed.edits, **choices)
