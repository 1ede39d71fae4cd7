"""Safe search and the sign-in locks, per group (`safe_search:` and `services:` in the policy).

The engines' hosts, parameters and paths are built in (`gateway.services.engines`); the policy chooses who gets
what and may add hosts, paths or whole engines. Group names are checked in `references.py`.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from gateway.policy.model_base import Domain, Name, Strict
from gateway.services.engines import SEARCH_ENGINES, YOUTUBE

Token = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
# A header value must stay on one line and in printable ASCII.
HeaderValue = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")]
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class SearchMode(enum.StrEnum):
    STRICT = "strict"
    OFF = "off"


class YouTubeMode(enum.StrEnum):
    STRICT = "strict"
    MODERATE = "moderate"
    OFF = "off"


class GroupSafeSearch(Strict):
    # Google, Bing, DuckDuckGo and any engine the policy adds.
    search: SearchMode = SearchMode.STRICT
    # YouTube's restricted mode, through the YouTube-Restrict header.
    youtube: YouTubeMode = YouTubeMode.STRICT

    @field_validator("search", "youtube", mode="before")
    @classmethod
    def _bare_off(cls, value: object) -> object:
        # YAML reads a bare `off` as false.
        return "off" if value is False else value


class EngineSpec(Strict):
    """More hosts (and, for a search engine, paths and parameters) for a built-in engine, or a new search engine."""

    hosts: list[Domain] = []
    # Path prefixes where the parameters are forced; omitted: the built-in engine's, or every path for a new one.
    paths: list[Annotated[str, Field(pattern=r"^/")]] | None = None
    params: dict[Token, HeaderValue] = {}


class SafeSearch(Strict):
    # Safe search is on and locked unless a group's entry says otherwise (the DfE standard: "on by default").
    default: GroupSafeSearch = GroupSafeSearch()
    groups: dict[Name, GroupSafeSearch] = {}
    engines: dict[Name, EngineSpec] = {}

    @field_validator("engines")
    @classmethod
    def _engines_complete(cls, engines: dict[str, EngineSpec]) -> dict[str, EngineSpec]:
        for name, spec in engines.items():
            if name == YOUTUBE and (spec.params or spec.paths is not None):
                raise ValueError("youtube takes hosts only: restricted mode is a header, on every path")
            if name not in SEARCH_ENGINES and name != YOUTUBE and not (spec.hosts and spec.params):
                raise ValueError(f"a new engine ({name!r}) needs hosts and the params that force its safe search")
        return engines

    def for_group(self, group: str) -> GroupSafeSearch:
        return self.groups.get(group, self.default)


class GoogleSignIn(Strict):
    """Google accounts only of these domains may sign in (X-GoogApps-Allowed-Domains)."""

    allowed_domains: list[Domain] = Field(min_length=1)
    # None: every group.
    groups: list[str] | None = None
    # Besides accounts.google.com and accounts.youtube.com.
    extra_hosts: list[Domain] = []


class MicrosoftSignIn(Strict):
    """Microsoft 365 sign-in only to these tenants (Restrict-Access-To-Tenants), set by the school's own directory
    (Restrict-Access-Context, its directory ID)."""

    tenants: list[Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")]] = Field(
        min_length=1
    )
    context: str
    groups: list[str] | None = None
    # Besides login.microsoftonline.com, login.microsoft.com and login.windows.net.
    extra_hosts: list[Domain] = []

    @model_validator(mode="after")
    def _directory_id(self) -> MicrosoftSignIn:
        if not GUID.match(self.context):
            raise ValueError(f"context must be the school's directory (tenant) ID, a GUID; not {self.context!r}")
        return self


class Services(Strict):
    google_sign_in: GoogleSignIn | None = None
    microsoft_sign_in: MicrosoftSignIn | None = None
