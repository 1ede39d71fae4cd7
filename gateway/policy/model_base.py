"""The building blocks every section of the policy model shares: strict models, names and domains."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.lists.hosts import normalise_host

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


def _domain(value: str) -> str:
    host = normalise_host(value.removeprefix("*.").removeprefix("."))
    if host is None:
        raise ValueError(f"not a valid domain: {value!r}")
    return host


# Inline domains in the policy, normalised like list entries; each covers its subdomains.
Domain = Annotated[str, AfterValidator(_domain)]


class Strict(BaseModel):
    # A misspelt key in a school's policy must be an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)
