"""`gateway check`, the officer's "why was this blocked?" tool, run as a real command."""

import json
import subprocess
import sys

from tests.support.policies import DEMO_POLICY, ROOT


def gateway(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)


def check_json(*args: str) -> dict:
    run = gateway("check", "--policy", str(DEMO_POLICY), "--json", *args)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_json_has_the_decision_and_why():
    got = check_json("--group", "pupil", "--at", "2026-09-07T09:30", "https://www.facebook.com/profile")
    assert got["action"] == "block"
    assert got["rule"] == "social-media-named"
    assert got["list"] == "social_media_named"
    assert got["period"] == "lesson"
    assert "not accessible" in got["reason"]


def test_offsets_are_converted_to_school_time():
    # 08:50 UTC on 7 September is 09:50 BST: lesson. Naive 08:49 is school-local: before school.
    assert check_json("--group", "guest", "--at", "2026-09-07T08:50Z", "tiktok.com")["period"] == "lesson"
    assert check_json("--group", "guest", "--at", "2026-09-07T07:49Z", "tiktok.com")["period"] == "before_school"
    assert check_json("--group", "guest", "--at", "2026-09-07T08:49", "tiktok.com")["action"] == "allow"
    assert check_json("--group", "guest", "--at", "2026-11-02T08:50+00:00", "tiktok.com")["action"] == "block"


def test_by_client_address_uses_the_networks():
    got = check_json("--ip", "10.20.3.4", "--at", "2026-09-07T12:30", "https://www.tiktok.com/")
    assert (got["group"], got["rule"]) == ("staff", "social-media-pupils-staff")
    assert check_json("--ip", "192.0.2.9", "--at", "2026-09-07T12:30", "https://www.tiktok.com/")["group"] == "guest"


def test_human_output():
    run = gateway("check", "--policy", str(DEMO_POLICY), "--group", "staff", "--at", "2026-09-07T12:30",
                  "https://instagram.com/")
    assert run.returncode == 0
    assert run.stdout.startswith("BLOCK  https://instagram.com/")
    assert "lunch" in run.stdout and "rule:    social-media-named" in run.stdout


def test_bad_input_is_a_clear_error():
    run = gateway("check", "--policy", str(DEMO_POLICY), "--group", "pupils", "example.org")
    assert run.returncode == 2 and "unknown group 'pupils'" in run.stderr
    run = gateway("check", "--policy", str(DEMO_POLICY), "--group", "pupil", "--at", "yesterday", "example.org")
    assert run.returncode == 2 and "not an ISO 8601 time" in run.stderr
    run = gateway("check", "--policy", str(DEMO_POLICY), "--group", "pupil", "http://exa mple.org/")
    assert run.returncode == 2 and "not a valid host name" in run.stderr
    run = gateway("check", "--policy", str(DEMO_POLICY), "example.org")
    assert run.returncode == 2 and "--group GROUP, --user USERNAME or --ip ADDRESS" in run.stderr


def test_by_user_from_the_roster(tmp_path):
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Username,Display name,Group,Year group,Class,Date of birth,Email\n"
        "amy.p,Amy Pupil,pupil,Year 6,6B,2015-03-01,amy@example.org\n"
    )
    assert gateway("db", "upgrade", "--db", db).returncode == 0
    imported = gateway("roster", "import", "--db", db, "--policy", str(DEMO_POLICY), str(roster))
    assert imported.returncode == 0, imported.stderr
    got = check_json("--db", db, "--user", "amy.p", "--at", "2026-09-07T09:30", "tiktok.com")
    assert (got["group"], got["user"], got["year_group"], got["age"]) == ("pupil", "amy.p", 6, 11)
    assert got["action"] == "block"
    missing = gateway("check", "--policy", str(DEMO_POLICY), "--db", db, "--user", "zed", "tiktok.com")
    assert missing.returncode == 2 and "not in the roster" in missing.stderr
