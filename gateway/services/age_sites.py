"""Reads the site files `age_limits.files` names (policies/age_limits.yaml), bounded like the policy file, with every
error naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pydantic

from gateway.policy.age_limits_model import AgeSite, AgeSitesFile
# The policy loader's own bounded YAML reading: a site file is policy too, held to the same limits.
from gateway.policy.loader import LoadedPolicy, PolicyError, Problem, _parse, _problem

MAX_FILE_BYTES = 256 * 1024


def read_age_sites(loaded: LoadedPolicy) -> list[AgeSite]:
    """The sites of every file the policy names, then the policy's own; PolicyError naming the file and line."""
    sites: list[AgeSite] = []
    for j, name in enumerate(loaded.policy.age_limits.files):
        path = loaded.resolve(name)
        sites += _read(path, loaded.problem(("age_limits", "files", j), f"cannot read the age limits file {path}"))
    return sites + list(loaded.policy.age_limits.sites)


def _read(path: Path, unreadable: Problem) -> list[AgeSite]:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError:
        raise PolicyError([unreadable]) from None
    if len(data) > MAX_FILE_BYTES:
        raise PolicyError([Problem(path, None, "", f"larger than {MAX_FILE_BYTES // 1024} KiB")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError([Problem(path, None, "", "not UTF-8 text")]) from None
    parsed, lines = _parse(path, text)
    try:
        return AgeSitesFile.model_validate(parsed).sites
    except pydantic.ValidationError as exc:
        raise PolicyError([_problem(path, lines, e["loc"], e["msg"]) for e in exc.errors()]) from None
