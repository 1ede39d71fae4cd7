"""The pure parts of safe search and the age gate: forcing parameters and cookie settings, path shapes, the
per-group plans, ages on the day, and the policy's errors naming file, line and field."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.identity.types import Identity
from gateway.policy.compiled import load_compiled
from gateway.policy.loader import PolicyError
from gateway.services.rewrite import force_params, force_settings, normal_path, under
from tests.support.policies import DEMO_POLICY, compile_demo, write_policy

SAFE = (("safe", "active"),)
NAMES = frozenset({"safe"})


@pytest.mark.parametrize("query, expected", [
    ("q=cats", "q=cats&safe=active"),
    ("", "safe=active"),
    ("q=a+b&safe=off&hl=en", "q=a+b&hl=en&safe=active"),
    ("Safe=Off&q=x&SAFE=images&safe=off", "q=x&safe=active"),
    ("%73afe=off&q=x", "q=x&safe=active"),
    ("safe%20=off&q=x", "q=x&safe=active"),
    ("q=x;safe=off", "safe=active"),
    ("q=x&&safe", "q=x&safe=active"),
    ("q=%E2%9C%93&unsafe=1", "q=%E2%9C%93&unsafe=1&safe=active"),
])  # fmt: skip
def test_force_params(query: str, expected: str) -> None:
    assert force_params(query, SAFE, NAMES) == expected


def test_force_settings_in_a_cookie() -> None:
    assert force_settings("SRCHLANG=en&ADLT=OFF&adlt=off", [("ADLT", "STRICT")]) == "SRCHLANG=en&ADLT=STRICT"
    assert force_settings("", [("ADLT", "STRICT")]) == "ADLT=STRICT"


@pytest.mark.parametrize("path, normal", [
    ("/", "/"), ("", "/"), ("//SignUp/?x=1", "/signup"), ("/%73ignup", "/signup"), ("/a/../signup/./", "/signup"),
    ("\\\\signup", "/signup"), ("/signup;jsessionid=1", "/signup"), ("/../../signup", "/signup"),
])  # fmt: skip
def test_normal_path(path: str, normal: str) -> None:
    assert normal_path(path) == normal


def test_under_is_whole_segments() -> None:
    assert under("/signup", ("/signup",)) and under("/signup/email", ("/signup",))
    assert not under("/signupnow", ("/signup",))
    assert under("/", ("/",)) and not under("/search", ("/",))


def test_plans_per_group_in_the_demo() -> None:
    plans = compile_demo().services
    pupil, staff, guest = (plans.for_group(g) for g in ("pupil", "staff", "guest"))
    assert pupil["www.google.de"].params == SAFE and pupil["images.google.co.uk"].params == SAFE
    # The other names google.com searches on, as a pupil tries them once www is rewritten.
    assert all(pupil[host].params == SAFE for host in ("encrypted.google.com", "ipv4.google.com", "ipv6.google.com"))
    assert dict(pupil["www.youtube.com"].headers) == {"YouTube-Restrict": "Strict"}
    assert dict(staff["youtu.be"].headers) == {"YouTube-Restrict": "Moderate"}
    assert dict(pupil["accounts.google.com"].headers) == {"X-GoogApps-Allowed-Domains": "perryfields.example"}
    # The demo locks Google sign-in for pupils and staff only; safe search holds for guests by default.
    assert "accounts.google.com" not in guest and guest["www.bing.com"].params == (("adlt", "strict"),)
    assert "www.bbc.co.uk" not in pupil and "google.evil.example" not in pupil


def test_ages_on_the_day_and_without_a_date_of_birth() -> None:
    age = compile_demo().age
    tom = Identity(group="pupil", date_of_birth=date(2013, 9, 8), year_group=8)
    assert age.blocks(tom, "www.tiktok.com", "/signup", date(2026, 9, 7)) is not None
    assert age.blocks(tom, "www.tiktok.com", "/signup", date(2026, 9, 8)) is None
    assert age.blocks(tom, "www.tiktok.com", "/", date(2026, 9, 7)) is None
    unknown = Identity(group="pupil", year_group=9)
    rule = age.blocks(unknown, "discord.com", "/register", date(2026, 9, 7))
    assert rule is not None and rule.age is None and "does not know your date of birth" in rule.reason()
    staff = Identity(group="staff")
    assert age.blocks(staff, "www.tiktok.com", "/signup", date(2026, 9, 7)) is None
    # A whole-site gate closes the site's connections too; a sign-up-only gate leaves them.
    assert age.blocks_whole_site(tom, "www.tinder.com", date(2026, 9, 7)) is not None
    assert age.blocks_whole_site(tom, "www.tiktok.com", date(2026, 9, 7)) is None


def test_year_group_estimate_when_the_policy_chooses_it(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, """\
age_limits:
  groups: [pupil]
  no_date_of_birth: year_group
  sites: [{name: Chat, minimum_age: 13, domains: [chat.example], sign_up: [/join]}]
""")
    age = load_compiled(policy).age
    # Year 9: the youngest is 13, so let through; Year 8: the youngest is 12; no year group either: blocked.
    assert age.blocks(Identity(group="pupil", year_group=9), "chat.example", "/join", date(2026, 9, 7)) is None
    assert age.blocks(Identity(group="pupil", year_group=8), "chat.example", "/join", date(2026, 9, 7)) is not None
    assert age.blocks(Identity(group="pupil"), "chat.example", "/join", date(2026, 9, 7)) is not None


def test_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "ages.yaml").write_text("sites:\n  - name: Chat\n    minimum_age: 99\n    domains: [chat.example]\n"
                                        "    sign_up: [/join]\n")  # fmt: skip
    policy = write_policy(tmp_path, """\
safe_search:
  groups: {pupils: {youtube: strict}}
  engines: {ecosia: {hosts: [www.ecosia.org]}}
services:
  microsoft_sign_in: {tenants: [school.example], context: not-a-guid, groups: [teachers]}
age_limits: {groups: [pupil], files: [ages.yaml, missing.yaml]}
""")
    with pytest.raises(PolicyError) as refused:
        load_compiled(policy)
    text = str(refused.value)
    assert "safe_search.groups.pupils: unknown group 'pupils'" in text
    assert "services.microsoft_sign_in.groups.0: unknown group 'teachers'" in text
    assert "needs hosts and the params" in text and "directory (tenant) ID, a GUID" in text
    policy.write_text(policy.read_text().replace("pupils:", "pupil:").replace("not-a-guid",
                      "11111111-2222-3333-4444-555555555555").replace("teachers", "staff")
                      .replace("[www.ecosia.org]}", "[www.ecosia.org], params: {safesearch: '1'}}"))  # fmt: skip
    with pytest.raises(PolicyError) as refused:
        load_compiled(policy)
    assert f"{tmp_path / 'ages.yaml'}:3: sites.0.minimum_age" in str(refused.value)
    (tmp_path / "ages.yaml").write_text("sites: [{name: Chat, minimum_age: 13, domains: [chat.example]}]\n")
    with pytest.raises(PolicyError) as refused:
        load_compiled(policy)
    assert "name its sign-up pages, or gate the whole site" in str(refused.value)
    (tmp_path / "ages.yaml").write_text("sites: [{name: Chat, minimum_age: 13, domains: [chat.example], "
                                        "sign_up: [other.example/join]}]\n")  # fmt: skip
    with pytest.raises(PolicyError) as refused:
        load_compiled(policy)
    assert "'other.example/join' is not on Chat's domains" in str(refused.value)
    (tmp_path / "ages.yaml").write_text("sites: [{name: Chat, minimum_age: 13, domains: [chat.example], "
                                        "sign_up: [/join]}]\n")  # fmt: skip
    with pytest.raises(PolicyError) as refused:
        load_compiled(policy)
    assert "age_limits.files.1: cannot read the age limits file" in str(refused.value)


def test_the_demo_is_valid_and_watches_its_age_file() -> None:
    compiled = compile_demo()
    assert DEMO_POLICY.parent.joinpath("age_limits.yaml").resolve() in compiled.list_files
