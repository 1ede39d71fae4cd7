"""Read a policy YAML file into a `Policy`, with every error naming its file, line and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from gateway.policy.model import Policy
from gateway.policy.references import Loc, reference_problems


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

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()


def load_policy(path: Path | str) -> LoadedPolicy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(path, None, "", f"cannot read policy file: {exc}")]) from None
    data, lines = _parse(path, text)
    problems = [_problem(path, lines, loc, message) for loc, message in reference_problems(data, path.parent)]
    try:
        policy = Policy.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_problem(path, lines, e["loc"], e["msg"]) for e in exc.errors()] + problems
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: p.line or 0))
    return LoadedPolicy(policy, path.resolve())


def _parse(path: Path, text: str) -> tuple[Any, dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise PolicyError([Problem(path, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if node is None:
        raise PolicyError([Problem(path, None, "", "the policy file is empty")])
    lines: dict[Loc, int] = {}
    return _plain(node, (), lines), lines


def _plain(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    """Turn a composed YAML node into plain data, remembering the line of every key and item."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        _flatten_merge_keys(node)
        result = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            result[key] = _plain(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*loc, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _flatten_merge_keys(node: yaml.MappingNode) -> None:
    loader = yaml.SafeLoader("")
    try:
        loader.flatten_mapping(node)
    finally:
        loader.dispose()


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _problem(path: Path, lines: dict[Loc, int], loc: tuple, message: str) -> Problem:
    # pydantic adds type tags (e.g. "function-after[...]") to a loc; the longest prefix we know has the line.
    loc = tuple(loc)
    known = loc
    while known and known not in lines:
        known = known[:-1]
    field = ".".join(str(part) for part in loc if not (isinstance(part, str) and "[" in part))
    return Problem(path, lines.get(known), field, message.removeprefix("Value error, "))
