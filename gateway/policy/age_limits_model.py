"""Sites' minimum ages, for the age gate on sign-ups (`age_limits:` in the policy, and the site files it names).

"Pupils are instructed not to sign up to any social media sites that have an age restriction above the pupil's
age." A site lists its domains (each covering its subdomains), the shapes of its sign-up pages and its minimum age;
`whole_site` gates every page of it instead. Group names are checked in `references.py`.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from gateway.lists.hosts import normalise_host
from gateway.policy.model_base import Domain, Strict

MAX_AGE = 21


class NoDateOfBirth(enum.StrEnum):
    # Treated as too young for every age-limited site: the safe choice for pupils.
    BLOCK = "block"
    # The youngest age the pupil's year group allows (never overstated); no year group either: blocked.
    YEAR_GROUP = "year_group"
    ALLOW = "allow"


class AgeSite(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    minimum_age: Annotated[int, Field(ge=1, le=MAX_AGE)]
    domains: list[Domain] = Field(min_length=1)
    # "/signup" on any of the site's hosts, or "accounts.example.com/signup" on that host only; case, repeated
    # slashes and the query do not matter.
    sign_up: list[Annotated[str, Field(min_length=1, max_length=256)]] = []
    # Every page of the site, not only its sign-up pages (and its connections, passed through or not).
    whole_site: bool = False
    # Where the minimum age comes from (the site's terms).
    terms: str = ""

    @field_validator("sign_up")
    @classmethod
    def _shapes(cls, shapes: list[str]) -> list[str]:
        for shape in shapes:
            host = shape.partition("/")[0]
            if host and normalise_host(host) is None:
                raise ValueError(f"{shape!r}: a sign-up page is '/path' or 'host/path'")
        return shapes

    @model_validator(mode="after")
    def _gates_something(self) -> AgeSite:
        if not self.sign_up and not self.whole_site:
            raise ValueError(f"{self.name}: name its sign-up pages, or gate the whole site")
        for shape in self.sign_up:
            host = normalise_host(shape.partition("/")[0]) if not shape.startswith("/") else None
            if host is not None and not any(host == d or host.endswith("." + d) for d in self.domains):
                raise ValueError(f"{shape!r} is not on {self.name}'s domains ({', '.join(self.domains)})")
        return self


class AgeSitesFile(Strict):
    """A file of sites (policies/age_limits.yaml)."""

    sites: list[AgeSite]


class AgeLimits(Strict):
    # The groups whose age is checked: pupils. Empty: nobody.
    groups: list[str] = []
    no_date_of_birth: NoDateOfBirth = NoDateOfBirth.BLOCK
    # Files of sites (like policies/age_limits.yaml), relative to the policy file.
    files: list[str] = []
    # More sites; one named like a site in the files replaces it.
    sites: list[AgeSite] = []
