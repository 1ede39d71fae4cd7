"""The policy a school writes in YAML, as pydantic models.

Field-level checks live here; checks that need the whole policy (a rule naming an unknown list or group) live
in `references.py`, so every error can still point at the field that is wrong.
"""

from __future__ import annotations

import enum
import ipaddress
from datetime import date, datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.decisions.types import Action, PeriodKind
from gateway.identity.types import IdentitySource
from gateway.policy.age_limits_model import AgeLimits
from gateway.policy.circumvention_model import Circumvention
from gateway.policy.content_model import ContentAnalysis
from gateway.policy.expectations_model import ExpectedDecision
from gateway.policy.interception_model import Interception
from gateway.policy.model_base import Domain, Name, Strict
from gateway.policy.reports_model import Reports
from gateway.policy.safe_search_model import SafeSearch, Services
from gateway.policy.uploads_model import Uploads
from gateway.selftest.categories import SelftestCategory

# Kinds a weekly timetable may use; the rest are decided by the calendar.
SCHOOL_DAY_KINDS = frozenset(
    {PeriodKind.LESSON, PeriodKind.BREAK, PeriodKind.LUNCH, PeriodKind.BEFORE_SCHOOL, PeriodKind.AFTER_SCHOOL}
)

class Weekday(enum.StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def index(self) -> int:
        return list(Weekday).index(self)


class School(Strict):
    name: str
    timezone: str = "Europe/London"
    # Trusts run one gateway per school; the site names this one in logs.
    site: Name = "main"
    # Whom a pupil or teacher should ask when something is wrongly blocked.
    contact: str = "the e-safety officer"
    # The blocked-content access form. Empty: the gateway's own form at its portal URL (`gateway run` sets it), or,
    # with no portal either, the block page names the contact.
    request_url: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Group(Strict):
    description: str = ""


class SignIn(Strict):
    """How people on sign-in-required networks prove who they are."""

    # Year groups that may use a class picture code or QR card instead of a password.
    picture_code_year_groups: list[int] = []
    idle_timeout_minutes: int = Field(default=60, ge=1, le=24 * 60)


class Network(Strict):
    name: Name
    subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(min_length=1)
    # The group of a client the gateway knows nothing more about; never more permissive than this.
    group: str
    identity: list[IdentitySource] = [IdentitySource.SUBNET]
    sign_in_required: bool = False


class Period(Strict):
    start: time
    # "24:00" is accepted for the end of the day.
    end: time | Literal["24:00"]
    kind: PeriodKind

    @field_validator("kind")
    @classmethod
    def _school_day_kind(cls, value: PeriodKind) -> PeriodKind:
        if value not in SCHOOL_DAY_KINDS:
            allowed = ", ".join(sorted(k.value for k in SCHOOL_DAY_KINDS))
            raise ValueError(f"a timetable period must be one of {allowed}; {value.value!r} comes from the calendar")
        return value

    @property
    def end_minute(self) -> int:
        return 24 * 60 if self.end == "24:00" else self.end.hour * 60 + self.end.minute

    @property
    def start_minute(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end_minute <= self.start_minute:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")
        return self


class DateRange(Strict):
    start: date
    end: date
    name: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise ValueError(f"ends ({self.end}) before it starts ({self.start})")
        return self

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


class Term(DateRange):
    half_terms: list[DateRange] = []


class Closure(Strict):
    """A day in term with no lessons: an INSET day or a bank holiday."""

    date: date
    reason: str


class Timetable(Strict):
    weekly: dict[Weekday, list[Period]]
    terms: list[Term] = Field(min_length=1)
    closures: list[Closure] = []

    @field_validator("weekly")
    @classmethod
    def _no_overlaps(cls, weekly: dict[Weekday, list[Period]]) -> dict[Weekday, list[Period]]:
        for day, periods in weekly.items():
            ordered = sorted(periods, key=lambda p: p.start_minute)
            for before, after in zip(ordered, ordered[1:]):
                if after.start_minute < before.end_minute:
                    raise ValueError(f"{day.value}: {before.start}-{before.end} overlaps {after.start}-{after.end}")
        return weekly


def is_test_domain(host: str) -> bool:
    """A name under `.test`, which RFC 2606 reserves: no real site can have it."""
    return host == "test" or host.endswith(".test")


class ListSource(Strict):
    description: str = ""
    # Plain list files (one domain a line), relative to the policy file.
    files: list[str] = []
    # UT1 `urls`-style files: host/path prefixes.
    url_files: list[str] = []
    # UT1 categories merged in once imported with `gateway lists import`.
    ut1: list[str] = []
    domains: list[Domain] = []
    # No exception, from the policy or the console, may lift a host on this list ("not accessible on the
    # network"). Lists in the illegal-content slot are unliftable whatever this says.
    unliftable: bool = False
    # Only fake entries under the reserved `.test` domain, for checking a slot end to end: they do not count as
    # the slot being filled.
    test_entries: bool = False
    # The DfE/UKSIC content category this list fills (`gateway selftest` checks each category with its entries).
    category: SelftestCategory | None = None

    @model_validator(mode="after")
    def _test_entries_are_fake(self) -> ListSource:
        if self.test_entries:
            real = [d for d in self.domains if not is_test_domain(d)]
            if real or self.ut1:
                raise ValueError(
                    "a list of test entries may hold only names under .test"
                    + (f" (not {real[0]!r})" if real else " (not UT1 categories)")
                )
        return self


class Rule(Strict):
    id: Name
    # None means every group, every period kind, every year group.
    groups: list[str] | None = None
    periods: list[PeriodKind] | None = None
    year_groups: list[int] | None = None
    # Devices by their name in the device register, and by ownership: "school", "personal", or "unregistered"
    # (a device the register does not know). None means any device.
    devices: list[str] | None = None
    device_ownership: list[Literal["school", "personal", "unregistered"]] | None = None
    lists: list[str] = []
    domains: list[Domain] = []
    action: Action
    reason: str

    @property
    def matches_every_site(self) -> bool:
        return not self.lists and not self.domains


class ExceptionGrant(Strict):
    """A scoped, time-limited unblock or permission (for example a headteacher-approved personal account)."""

    id: Name
    groups: list[str] | None = None
    users: list[str] | None = None
    year_groups: list[int] | None = None
    classes: list[str] | None = None
    periods: list[PeriodKind] | None = None
    lists: list[str] = []
    domains: list[Domain] = []
    action: Literal[Action.ALLOW, Action.FLAG] = Action.ALLOW
    starts: datetime | None = None
    expires: datetime
    reason: str
    approved_by: str | None = None

    @model_validator(mode="after")
    def _has_target(self) -> ExceptionGrant:
        if not self.lists and not self.domains:
            raise ValueError("an exception must name lists or domains: it may not lift the whole filter")
        if self.starts and self.expires <= self.starts:
            raise ValueError("expires before it starts")
        return self


class NeverIntercept(Strict):
    """Hosts whose TLS passes through untouched: banking, health, certificate-pinned apps."""

    lists: list[str] = []
    domains: list[Domain] = []


class DefaultAction(Strict):
    action: Action = Action.ALLOW
    reason: str = "Allowed by the school's default policy"


class Connections(Strict):
    """What a client may open through the proxy besides web requests the rules decide."""

    # CONNECT tunnels go only to these ports; anything else is refused before the gateway contacts the host.
    connect_ports: list[Annotated[int, Field(ge=1, le=65535)]] = [443]
    # Hosts that may receive bytes that are not TLS inside a CONNECT tunnel (SSH, VPNs): none unless named.
    raw_tunnel_domains: list[Domain] = []
    # The school's own networks on public addresses; loopback, link-local and private ranges are internal always.
    internal_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    # Internal services clients may reach through the proxy ("10.20.0.5:443", "10.20.0.0/24:80", "10.20.0.9").
    reachable_internal: list[str] = []


class Curriculum(Strict):
    """Curriculum-activity windows: a teacher opens sites for a class they teach, in lesson time only."""

    # Teachers (console usernames) whose windows open at once, without waiting for the headteacher, who sees them
    # afterwards in the list of windows opened without approval.
    preauthorised_teachers: list[Annotated[str, Field(min_length=1, max_length=128)]] = []
    # The longest date range one window may cover, so a "window" cannot quietly become a standing exception.
    max_window_days: int = Field(default=14, ge=1, le=366)

    @field_validator("preauthorised_teachers")
    @classmethod
    def _lower_case(cls, names: list[str]) -> list[str]:
        # Console and roster usernames are stored lower case.
        return [name.strip().lower() for name in names]


class Policy(Strict):
    school: School
    groups: dict[Name, Group] = Field(min_length=1)
    default_group: str
    networks: list[Network] = []
    sign_in: SignIn = SignIn()
    timetable: Timetable
    # Where `gateway lists import` puts UT1 categories, relative to the policy file.
    imports: str = "../var/lists/ut1"
    lists: dict[Name, ListSource] = {}
    # The IWF/CTIRU slot: these lists always block; no rule, exception or console role can lift them.
    illegal: list[str] = []
    never_intercept: NeverIntercept = NeverIntercept()
    # Per group, hosts whose TLS passes through undecrypted (decided on the server name, logged by host).
    interception: Interception = Interception()
    rules: list[Rule] = []
    exceptions: list[ExceptionGrant] = []
    default: DefaultAction = DefaultAction()
    connections: Connections = Connections()
    curriculum: Curriculum = Curriculum()
    # Real-time analysis of page text and search terms (phrase lists in policies/content/).
    content: ContentAnalysis = ContentAnalysis()
    # Reports to the e-safety officer: the list a one-click block adds to, alerts and the weekly digest.
    reports: Reports = Reports()
    # Decisions the policy must keep giving: checked by `gateway policy validate` and before every reload.
    expect: list[ExpectedDecision] = []
    # Attempts to get round the filter: detectors, bare addresses, bursts, immediate bans and notices.
    circumvention: Circumvention = Circumvention()
    # Image and video uploads to social media: refused but for the school's accounts, from approved devices.
    uploads: Uploads = Uploads()
    # Safe search forced per group on Google, Bing, DuckDuckGo and YouTube (engines and hosts built in, extendable).
    safe_search: SafeSearch = SafeSearch()
    # Sign-in locks: Google accounts of the school's domains only, Microsoft 365 of the school's tenant only.
    services: Services = Services()
    # Sites' minimum ages: pupils below one are kept from its sign-up pages (or the whole site).
    age_limits: AgeLimits = AgeLimits()
