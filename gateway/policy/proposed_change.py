"""A rule or list change proposed in the console or on the command line, applied to the running policy without
touching its file: the compiled policy it would give (for the impact preview) and the edit that would make it.

The change is refused when the policy could never accept it, or when it would lift what must stay blocked: an
unknown list or rule, an invalid domain, a rule letting through a list in the illegal-content slot or one marked
unliftable, taking a site off such a list, or dropping the rule that blocks one.

Compiling reuses the running policy's list index: a proposal only overrides the list bits of the few domains it
names (`OverlayIndex`), so a preview does not read or merge millions of list entries again. List bits never move:
a rule's own inline domains get a new bit after all the existing ones, so grants compiled against the running
policy still mean the same lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydantic
import yaml

from gateway.decisions.types import Action
from gateway.lists.cache import load_domains
from gateway.lists.hashing import hash_domains
from gateway.lists.hosts import normalise_host, suffixes
from gateway.lists.index import DomainIndex
from gateway.policy.compiled import CompiledPolicy, CompiledRule
from gateway.policy.model import Domain, ListSource, Rule

# Domains one change may name: a proposal is a handful of sites, not a list file typed into a form.
MAX_DOMAINS = 100
_DOMAINS: pydantic.TypeAdapter[list[str]] = pydantic.TypeAdapter(list[Domain])


class RefusedChange(ValueError):
    """A change the policy could never accept, with the reason."""


@dataclass(frozen=True, slots=True)
class AddToList:
    list: str
    domains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemoveFromList:
    list: str
    domains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AddRule:
    rule: Rule
    first: bool = False


@dataclass(frozen=True, slots=True)
class SetRuleAction:
    rule: str
    action: Action


@dataclass(frozen=True, slots=True)
class DropRule:
    rule: str


type PolicyChange = AddToList | RemoveFromList | AddRule | SetRuleAction | DropRule


@dataclass(frozen=True, slots=True)
class Edit:
    """One edit to the policy or a list file: where, and the YAML (or line) to write there."""

    where: str
    text: str


@dataclass(frozen=True)
class ProposedPolicy:
    compiled: CompiledPolicy
    edits: tuple[Edit, ...]
    # The changes as data, for the audit trail.
    summary: tuple[str, ...]
    # What the change can reach: list entries whose bits changed, the list bits of every rule it added, changed or
    # dropped, and whether one of those rules matches every site.
    entries: frozenset[str] = frozenset()
    rule_mask: int = 0
    every_site: bool = False

    def affected_hosts(self, running: CompiledPolicy, hosts: Iterable[str]) -> set[str] | None:
        """The logged hosts whose decision the change could alter (the rest need no replay), or None when any
        could: a rule matching every site, or rule changes while URL-prefix lists make matches path-dependent."""
        if self.every_site or (self.rule_mask and len(running.urls)):
            return None
        found = set()
        for logged in hosts:
            host = normalise_host(logged)
            if host is None:
                continue
            host_suffixes = suffixes(host)
            if not self.entries.isdisjoint(host_suffixes):
                found.add(logged)
            elif self.rule_mask and any(bits & self.rule_mask for _, bits in running.domains.match(host)):
                found.add(logged)
        return found


# --- reading a change from text (the console's form and the command's options share these) ---------------------


def domains_of(text: str | Iterable[str]) -> tuple[str, ...]:
    """Comma- or space-separated domains, normalised; RefusedChange naming the first invalid one."""
    items = [i for part in ([text] if isinstance(text, str) else text) for i in part.replace(",", " ").split() if i]
    if not items:
        raise RefusedChange("name at least one domain")
    if len(items) > MAX_DOMAINS:
        raise RefusedChange(f"at most {MAX_DOMAINS} domains in one change")
    try:
        return tuple(dict.fromkeys(_DOMAINS.validate_python(items)))
    except pydantic.ValidationError as exc:
        raise RefusedChange(_reason(exc)) from None


def action_of(text: str) -> Action:
    try:
        return Action(text.strip().lower())
    except ValueError:
        raise RefusedChange(f"action: one of block, allow, flag, not {text[:40]!r}") from None


def assignment(text: str, what: str) -> tuple[str, str]:
    """`NAME=VALUE` as typed on the command line."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise RefusedChange(f"write {what}, not {text[:60]!r}")
    return name.strip(), value.strip()


def new_rule(**fields: object) -> Rule:
    """A rule from its fields as typed (lists, domains, groups, periods, year groups, action, reason)."""
    try:
        return Rule.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise RefusedChange(_reason(exc)) from None


def _reason(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        ": ".join(filter(None, [".".join(map(str, e["loc"][:1])), e["msg"].removeprefix("Value error, ")]))
        for e in exc.errors()
    )


# --- applying it ------------------------------------------------------------------------------------------------


def propose(compiled: CompiledPolicy, changes: Sequence[PolicyChange]) -> ProposedPolicy:
    """The running policy with `changes` applied in order; RefusedChange for the first one refused."""
    if not changes:
        raise RefusedChange("no change proposed")
    draft = _Draft(compiled)
    for change in changes:
        draft.apply(change)
    return draft.result()


class OverlayIndex:
    """A domain index with some exact entries' list bits replaced; every other lookup is the base index's. Only
    what the decision engine asks of an index (`match`): a proposal is decided, never loaded into a proxy."""

    __slots__ = ("_base", "_entries")

    def __init__(self, base: DomainIndex, entries: Mapping[str, int]) -> None:
        self._base = base
        self._entries = dict(entries)

    def match(self, host: str) -> list[tuple[str, int]]:
        found = self._base.match(host)
        host_suffixes = suffixes(host)
        if self._entries.keys().isdisjoint(host_suffixes):
            return found
        masks = dict(found)
        masks.update((s, self._entries[s]) for s in host_suffixes if s in self._entries)
        return [(s, masks[s]) for s in host_suffixes if masks.get(s)]


class _Draft:
    def __init__(self, compiled: CompiledPolicy) -> None:
        self.base = compiled
        self.loaded = compiled.loaded
        self.lists: dict[str, ListSource] = dict(compiled.policy.lists)
        self.rules: list[tuple[Rule, CompiledRule]] = list(compiled.rules)
        self.names = list(compiled.names)
        self.entries: dict[str, int] = {}
        self.rule_mask = 0
        self.every_site = False
        # A list's name stands for the edit to its `domains:`, written once, as it ends up after every change.
        self.edits: list[Edit | str] = []
        self.summary: list[str] = []
        illegal = set(compiled.policy.illegal)
        # Lists nothing may lift. The illegal slot blocks before any rule, so only the others need a blocking rule.
        self.unliftable = compiled.unliftable_mask
        self.rule_guarded = sum(1 << i for i, name in enumerate(compiled.names)
                                if compiled.unliftable_mask >> i & 1 and name not in illegal)  # fmt: skip

    # The list bits of a domain's own entry (not its parents'), as the draft stands.
    def mask_of(self, domain: str) -> int:
        if domain in self.entries:
            return self.entries[domain]
        return next((mask for entry, mask in self.base.domains.match(domain) if entry == domain), 0)

    def hits(self, domain: str) -> int:
        """Bits of every list holding the domain or a parent of it."""
        mask = 0
        for entry in suffixes(domain):
            mask |= self.mask_of(entry)
        return mask

    def bit(self, name: str) -> int:
        return 1 << self.names.index(name)

    def list_named(self, name: str) -> ListSource:
        if name not in self.lists:
            raise RefusedChange(f"the policy has no list {name!r} (lists: {', '.join(sorted(self.lists))})")
        return self.lists[name]

    def rule_index(self, ident: str) -> int:
        for i, (rule, _) in enumerate(self.rules):
            if rule.id == ident:
                return i
        raise RefusedChange(f"the policy has no rule {ident!r} (rules: {', '.join(r.id for r, _ in self.rules)})")

    def reaches(self, rule: CompiledRule) -> None:
        self.rule_mask |= rule.mask
        self.every_site |= rule.every_site

    def apply(self, change: PolicyChange) -> None:
        match change:
            case AddToList():
                self.add_to_list(change)
            case RemoveFromList():
                self.remove_from_list(change)
            case AddRule():
                self.add_rule(change)
            case SetRuleAction():
                self.set_action(change)
            case DropRule():
                self.drop_rule(change)

    def add_to_list(self, change: AddToList) -> None:
        source = self.list_named(change.list)
        bit = self.bit(change.list)
        for domain in change.domains:
            if self.mask_of(domain) & bit:
                raise RefusedChange(f"{domain!r} is already on the list {change.list!r}")
            self.entries[domain] = self.mask_of(domain) | bit
        domains = [*source.domains, *change.domains]
        self.lists[change.list] = source.model_copy(update={"domains": domains})
        self.edits.append(change.list)
        self.summary.append(f"add to list {change.list}: {', '.join(change.domains)}")

    def remove_from_list(self, change: RemoveFromList) -> None:
        source = self.list_named(change.list)
        if change.list in self.base.policy.illegal:
            raise RefusedChange(f"the list {change.list!r} is in the illegal-content slot: nothing may be taken off it")
        if source.unliftable:
            raise RefusedChange(f"the list {change.list!r} is marked unliftable (not accessible on the network): "
                                "nothing may be taken off it")  # fmt: skip
        bit = self.bit(change.list)
        for domain in change.domains:
            if not self.mask_of(domain) & bit:
                parent = next((s for s in suffixes(domain)[1:] if self.mask_of(s) & bit), None)
                if parent is not None:
                    raise RefusedChange(
                        f"{domain!r} is on the list {change.list!r} through its entry {parent!r}: a list cannot "
                        "leave out part of an entry; propose an allow rule instead")
                raise RefusedChange(f"{domain!r} is not on the list {change.list!r}")
            self.edits += self.removal_edits(change.list, source, domain)
            self.entries[domain] = self.mask_of(domain) & ~bit
        domains = [d for d in source.domains if d not in change.domains]
        if domains != source.domains:
            self.lists[change.list] = source.model_copy(update={"domains": domains})
            self.edits.append(change.list)
        self.summary.append(f"remove from list {change.list}: {', '.join(change.domains)}")

    def removal_edits(self, name: str, source: ListSource, domain: str) -> list[Edit]:
        """The list files a domain must be deleted from (its inline entry is edited with the list's domains)."""
        wanted = hash_domains([domain])
        edits = []
        for file in source.files:
            path = self.loaded.resolve(file)
            if _holds(path, wanted):
                edits.append(Edit(f"{path}: delete the line", domain))
        for category in source.ut1:
            path = self.loaded.resolve(self.base.policy.imports) / category / "domains"
            if _holds(path, wanted):
                raise RefusedChange(f"{domain!r} comes from the UT1 category {category!r} of the list {name!r}, "
                                    "which `gateway lists import` rewrites: propose an allow rule instead")  # fmt: skip
        return edits

    def add_rule(self, change: AddRule) -> None:
        rule = change.rule
        if any(existing.id == rule.id for existing, _ in self.rules):
            raise RefusedChange(f"the policy already has a rule {rule.id!r}")
        unknown = [g for g in rule.groups or () if g not in self.base.policy.groups]
        if unknown:
            raise RefusedChange(f"the policy has no group {unknown[0]!r} "
                                f"(groups: {', '.join(self.base.policy.groups)})")  # fmt: skip
        for name in rule.lists:
            self.list_named(name)
        if rule.action is not Action.BLOCK:
            self.refuse_lifting(rule, f"a rule that {rule.action.value}s")
        mask = sum(self.bit(name) for name in rule.lists)
        if rule.domains:
            self.names.append(f"rule:{rule.id}")
            own = self.bit(f"rule:{rule.id}")
            mask |= own
            for domain in rule.domains:
                self.entries[domain] = self.mask_of(domain) | own
        years = frozenset(rule.year_groups) if rule.year_groups is not None else None
        compiled_rule = CompiledRule(id=rule.id, action=rule.action, reason=rule.reason, mask=mask,
                                     every_site=rule.matches_every_site, year_groups=years)  # fmt: skip
        self.rules.insert(0 if change.first else len(self.rules), (rule, compiled_rule))
        self.reaches(compiled_rule)
        self.edits.append(self.new_rule_edit(rule, change.first))
        self.summary.append(f"add rule {rule.id} ({'first' if change.first else 'last'}): "
                            + rule.model_dump_json(exclude_defaults=True))  # fmt: skip

    def set_action(self, change: SetRuleAction) -> None:
        i = self.rule_index(change.rule)
        rule, compiled_rule = self.rules[i]
        if rule.action is change.action:
            raise RefusedChange(f"the rule {rule.id!r} already says {rule.action.value}")
        if change.action is not Action.BLOCK:
            self.refuse_lifting(rule, f"the rule {rule.id!r} set to {change.action.value}")
        self.rules[i] = (rule.model_copy(update={"action": change.action}),
                         dataclasses.replace(compiled_rule, action=change.action))  # fmt: skip
        self.reaches(compiled_rule)
        self.edits.append(Edit(f"{self.at(('rules', i, 'action'), rule.id)}: change `action: {rule.action.value}` to",
                               f"action: {change.action.value}"))  # fmt: skip
        self.summary.append(f"rule {rule.id}: action {rule.action.value} -> {change.action.value}")

    def drop_rule(self, change: DropRule) -> None:
        i = self.rule_index(change.rule)
        rule, compiled_rule = self.rules[i]
        guarded = compiled_rule.mask & self.rule_guarded
        if rule.action is Action.BLOCK and guarded:
            listed = self.base.domains.names_in(guarded)
            raise RefusedChange(f"the rule {rule.id!r} blocks the unliftable list {listed[0]!r}: dropping it would "
                                "let that list through")  # fmt: skip
        del self.rules[i]
        self.reaches(compiled_rule)
        self.edits.append(Edit(f"{self.at(('rules', i), rule.id)}: delete the rule",
                               _yaml([rule.model_dump(mode='json', exclude_defaults=True)])))  # fmt: skip
        self.summary.append(f"drop rule {rule.id}")

    def refuse_lifting(self, rule: Rule, what: str) -> None:
        """A rule that lets through may name no unliftable list and no site on one, and may not match every site
        while some list must stay blocked by rule."""
        for name in rule.lists:
            if self.bit(name) & self.unliftable:
                raise RefusedChange(f"{what} may not name the unliftable list {name!r}")
        for domain in rule.domains:
            common = self.hits(domain) & self.unliftable
            if common:
                listed = self.base.domains.names_in(common)[0]
                raise RefusedChange(f"{what} may not name {domain!r}: it is on the unliftable list {listed!r}")
        if rule.matches_every_site and self.rule_guarded:
            listed = self.base.domains.names_in(self.rule_guarded)[0]
            raise RefusedChange(f"{what} may not match every site: it would let through the unliftable list "
                                f"{listed!r}; name lists or domains")  # fmt: skip

    # --- the edits, against the policy file as it is ---------------------------------------------------------

    def at(self, loc: tuple[str | int, ...], rule_id: str | None = None) -> str:
        """The policy file and line of a field; a rule is found by its id in the file as loaded."""
        if rule_id is not None and loc[0] == "rules":
            ids = [r.id for r in self.base.policy.rules]
            loc = ("rules", ids.index(rule_id), *loc[2:]) if rule_id in ids else ("rules",)
        line = self.loaded.lines.get(loc) or self.loaded.lines.get(loc[:2]) or self.loaded.lines.get(loc[:1])
        where = ".".join(str(part) for part in loc)
        return f"{self.loaded.path}, line {line} ({where})" if line else f"{self.loaded.path} ({where})"

    def list_domains_edit(self, name: str) -> Edit:
        domains = self.lists[name].domains
        loc = ("lists", name, "domains") if ("lists", name, "domains") in self.loaded.lines else ("lists", name)
        return Edit(f"{self.at(loc)}: the list's `domains:` becomes", _yaml({"domains": domains}))

    def new_rule_edit(self, rule: Rule, first: bool) -> Edit:
        body = _yaml([rule.model_dump(mode="json", exclude_defaults=True)])
        existing = self.base.policy.rules
        if not existing:
            return Edit(f"{self.loaded.path}: add a `rules:` section", "rules:\n" + _indent(body))
        if first:
            return Edit(f"{self.at(('rules', 0), existing[0].id)}: insert before the rule {existing[0].id!r}", body)
        return Edit(f"{self.at(('rules', len(existing) - 1), existing[-1].id)}: insert after the rule "
                    f"{existing[-1].id!r}, at the end of `rules:`", body)  # fmt: skip

    def result(self) -> ProposedPolicy:
        policy = self.base.policy.model_copy(update={"lists": self.lists, "rules": [r for r, _ in self.rules]})
        names = tuple(self.names)
        domains = OverlayIndex(self.base.domains, self.entries) if self.entries else self.base.domains
        compiled = dataclasses.replace(
            self.base, loaded=dataclasses.replace(self.loaded, policy=policy), names=names,
            domains=domains, rules=tuple(self.rules), _rule_tables={},  # type: ignore[arg-type]
        )  # fmt: skip
        edits = [self.list_domains_edit(e) if isinstance(e, str) else e for e in dict.fromkeys(self.edits)]
        return ProposedPolicy(compiled, tuple(edits), tuple(self.summary), frozenset(self.entries), self.rule_mask,
                              self.every_site)  # fmt: skip


def _holds(path: Path, wanted: np.ndarray) -> bool:
    try:
        return bool(np.isin(wanted, load_domains(path)).any())
    except OSError:
        return False


def _yaml(value: object) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _indent(text: str) -> str:
    return "".join(f"  {line}" for line in text.splitlines(keepends=True))
