"""Read a policy YAML file into a `Policy`, with every error naming its file, line and field.

A policy file is written by people and may be handed to a running proxy, so hostile or broken YAML must end in
an error, never a hang or a traceback: the file's size, the number of nodes once aliases are expanded and the
nesting depth are bounded, and keys must be plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from gateway.policy import extends
from gateway.policy.model import Policy
from gateway.policy.references import Loc, reference_problems

# A real policy is a few kilobytes; inline domain lists belong in list files.
MAX_POLICY_BYTES = 1024 * 1024
# Nodes after alias expansion: a "billion laughs" file is a few kilobytes that expands past any real policy.
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Problem:
    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class PolicyError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    # The line of every key and item, so checks made after loading can still name them.
    lines: Mapping[Loc, int] = field(default_factory=dict, compare=False, repr=False)
    # For a site over a trust's base (`gateway.policy.extends`): the file of each key and item the base gave.
    files: Mapping[Loc, Path] = field(default_factory=dict, compare=False, repr=False)
    # The policy file and every base it extends: a change to any of them reloads the policy.
    bases: tuple[Path, ...] = ()

    @property
    def sources(self) -> tuple[Path, ...]:
        return (self.path, *self.bases)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()

    def problem(self, loc: Loc, message: str) -> Problem:
        """A problem at a field of the policy file, with its line."""
        return _problem(self.path, self.lines, loc, message, self.files)


def load_policy(path: Path | str) -> LoadedPolicy:
    path = Path(path)
    text = _read(path)
    data, lines = _parse(path, text)
    files: dict[Loc, Path] = {}
    bases: tuple[Path, ...] = ()
    if isinstance(data, dict) and extends.KEY in data:
        try:
            layered = extends.load_layers(path, data, lines, lambda base: _parse(base, _read(base)))
        except extends.ExtendsError as error:
            raise PolicyError([Problem(error.path, error.line, "", error.message)]) from None
        data, bases = layered.data, layered.sources[1:]
        lines = {loc: line for loc, (_, line) in layered.where.items()}
        files = {loc: file for loc, (file, _) in layered.where.items() if file != path}
    problems = [_problem(path, lines, loc, message, files) for loc, message in reference_problems(data, path.parent)]
    try:
        policy = Policy.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_problem(path, lines, e["loc"], e["msg"], files) for e in exc.errors()] + problems
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: (str(p.file) != str(path), p.line or 0)))
    return LoadedPolicy(policy, path.resolve(), lines, files, bases)


def _read(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError([Problem(path, None, "", f"cannot read policy file: {exc}")]) from None
    if len(data) > MAX_POLICY_BYTES:
        message = f"the policy file is larger than {MAX_POLICY_BYTES // 1024} KiB; put long domain lists in list files"
        raise PolicyError([Problem(path, None, "", message)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyError([Problem(path, line, "", "not UTF-8 text")]) from None


def _parse(path: Path, text: str) -> tuple[Any, dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise PolicyError([Problem(path, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    except RecursionError:
        raise PolicyError([Problem(path, None, "", "not valid YAML: nested too deeply")]) from None
    if node is None:
        raise PolicyError([Problem(path, None, "", "the policy file is empty")])
    lines: dict[Loc, int] = {}
    return _Plain(path, lines).convert(node, ()), lines


class _Plain:
    """Turns a composed YAML node into plain data, remembering the line of every key and item."""

    def __init__(self, path: Path, lines: dict[Loc, int]) -> None:
        self.path = path
        self.lines = lines
        self.nodes = 0
        # Nodes being converted: meeting one again means an alias refers to a node that contains it.
        self.open: set[int] = set()

    def fail(self, node: yaml.Node, message: str) -> PolicyError:
        return PolicyError([Problem(self.path, node.start_mark.line + 1, "", message)])

    def convert(self, node: yaml.Node, loc: Loc) -> Any:
        self.nodes += 1
        if self.nodes > MAX_EXPANDED_NODES:
            raise self.fail(node, f"more than {MAX_EXPANDED_NODES:,} values once aliases are expanded "
                                  "(a YAML bomb?)")  # fmt: skip
        if len(loc) > MAX_DEPTH:
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep")
        self.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self.open:
            raise self.fail(node, "an alias refers to a value that contains it (recursive alias)")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, loc)
            return [self.convert(item, (*loc, i)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        self.flatten_merge_keys(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "a key must be a plain name or value, not a list or a map")
            key = self.scalar(key_node)
            result[key] = self.convert(value_node, (*loc, key))
            self.lines[(*loc, key)] = key_node.start_mark.line + 1
        return result

    def flatten_merge_keys(self, node: yaml.MappingNode) -> None:
        loader = yaml.SafeLoader("")
        try:
            loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            raise self.fail(node, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
        except RecursionError:
            raise self.fail(node, "an alias refers to a value that contains it (recursive alias)") from None
        finally:
            loader.dispose()

    def scalar(self, node: yaml.ScalarNode) -> Any:
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            # Python refuses to turn thousands of digits into an int; a date like 2026-02-30 is a ValueError.
            text = node.value if len(node.value) <= 40 else node.value[:40] + "…"
            why = str(getattr(exc, "problem", None) or exc).split(";")[0]
            raise self.fail(node, f"cannot read the value {text!r}: {why}") from None
        finally:
            loader.dispose()


def _problem(path: Path, lines: Mapping[Loc, int], loc: tuple, message: str,
             files: Mapping[Loc, Path] | None = None) -> Problem:  # fmt: skip
    # pydantic adds type tags (e.g. "function-after[...]") to a loc; the longest prefix we know has the line.
    loc = tuple(loc)
    known = loc
    while known and known not in lines:
        known = known[:-1]
    field = ".".join(str(part) for part in loc if not (isinstance(part, str) and "[" in part))
    file = (files or {}).get(known, path)
    return Problem(file, lines.get(known), field, message.removeprefix("Value error, "))
