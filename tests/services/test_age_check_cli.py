"""`gateway check --user` shows the age rule: the person's age that day, the site's minimum, the outcome."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.policies import DEMO_POLICY, ROOT

ROSTER = """\
Username,Display name,Group,Year group,Class,Date of birth,Email
tom,Tom Twelve,pupil,Year 8,8A,2013-09-08,
nia,Nia Unknown,pupil,Year 8,8A,,
"""


def gateway(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("age-check")
    url = f"sqlite:///{folder / 'gateway.db'}"
    (folder / "roster.csv").write_text(ROSTER)
    assert gateway("db", "upgrade", "--db", url).returncode == 0
    imported = gateway("roster", "import", "--db", url, "--policy", str(DEMO_POLICY), str(folder / "roster.csv"))
    assert imported.returncode == 0, imported.stderr
    return url


def check(db: str, *args: str) -> subprocess.CompletedProcess:
    return gateway("check", "--policy", str(DEMO_POLICY), "--db", db, *args)


def test_the_day_before_and_the_birthday(db: str) -> None:
    before = check(db, "--user", "tom", "--at", "2026-09-07T23:30", "https://www.tiktok.com/signup")
    assert before.returncode == 0, before.stderr
    assert ("age:     TikTok is 13+ (sign-up pages); age 12 today (from the date of birth); blocked: below the "
            "minimum age") in before.stdout  # fmt: skip
    on_the_day = json.loads(check(db, "--user", "tom", "--json", "--at", "2026-09-08T00:30",
                                  "https://www.tiktok.com/signup").stdout)  # fmt: skip
    assert on_the_day["age_rule"] == {"site": "TikTok", "minimum_age": 13, "whole_site": False, "checked": True,
                                      "gated_page": True, "age": 13, "age_from": "date of birth",
                                      "no_date_of_birth": None, "outcome": "allow"}  # fmt: skip


def test_no_date_of_birth_says_so(db: str) -> None:
    run = check(db, "--user", "nia", "--at", "2026-09-07T10:00", "https://discord.com/register")
    assert "age unknown: no date of birth on the roster, treated as block" in run.stdout
    assert "blocked: age unknown" in run.stdout


def test_the_age_block_is_the_decision_when_the_rules_allow(db: str) -> None:
    # Staff and pupils alike reach Steam in the demo; Steam's sign-up is 13+.
    got = json.loads(check(db, "--user", "tom", "--json", "--at", "2026-09-07T10:00",
                           "https://store.steampowered.com//Join/").stdout)  # fmt: skip
    assert (got["action"], got["source"], got["rule"]) == ("block", "age", "age-limit")
    assert got["reason"].startswith("You need to be 13 to join Steam.")
    assert got["age_rule"]["outcome"] == "block"
    # Another page of the site is not gated; a site with no age limit has no age rule.
    store = json.loads(check(db, "--user", "tom", "--json", "--at", "2026-09-07T10:00",
                             "https://store.steampowered.com/").stdout)  # fmt: skip
    assert store["action"] == "allow" and store["age_rule"]["gated_page"] is False
    plain = json.loads(check(db, "--user", "tom", "--json", "--at", "2026-09-07T10:00", "https://www.bbc.co.uk/").stdout)
    assert plain["age_rule"] is None
