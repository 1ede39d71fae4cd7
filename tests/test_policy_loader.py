"""Policy files: every error names the file, line and field; `gateway policy validate` reports them all."""

import subprocess
import sys

import pytest

from gateway.policy.loader import PolicyError, load_policy
from tests.support.policies import DEMO_POLICY, ROOT, write_policy


def problems(path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return [str(p) for p in caught.value.problems]


def line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_demo_policy_is_valid():
    loaded = load_policy(DEMO_POLICY)
    assert loaded.policy.school.name == "Perryfields Primary PRU"


def test_unknown_list_group_and_period_name_line_and_field(tmp_path):
    path = write_policy(
        tmp_path,
        """
lists:
  games: {domains: [games.example]}
rules:
  - id: one
    groups: [pupils]
    lists: [gmes]
    action: block
    reason: x
  - id: two
    periods: [playtime]
    action: block
    reason: y
""",
    )
    found = problems(path)

    def reported(needle: str, field: str, message: str) -> bool:
        return any(p.startswith(f"{path}:{line_of(path, needle)}: {field}: {message}") for p in found)

    assert reported("groups: [pupils]", "rules.0.groups.0", "unknown group 'pupils'")
    assert reported("lists: [gmes]", "rules.0.lists.0", "unknown list 'gmes'")
    assert reported("periods: [playtime]", "rules.1.periods.0", "Input should be")


def test_field_errors_are_all_reported(tmp_path):
    path = write_policy(
        tmp_path,
        """
rules:
  - id: bad
    action: obliterate
    reason: x
    colour: red
""",
    )
    found = problems(path)
    assert any(f":{line_of(path, 'action: obliterate')}: rules.0.action:" in p for p in found)
    assert any(f":{line_of(path, 'colour: red')}: rules.0.colour: Extra inputs are not permitted" in p for p in found)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("school: {name: x\ngroups: [\n")
    (found,) = problems(path)
    assert found.startswith(f"{path}:") and "not valid YAML" in found


def test_missing_list_file_and_bad_timezone(tmp_path):
    path = write_policy(tmp_path, "lists:\n  games: {files: [lists/nope.txt]}\n")
    path.write_text(path.read_text().replace("school: {name: Test School", "school: {name: Test School, timezone: Mars/Olympus"))
    found = problems(path)
    assert any("school.timezone: unknown time zone 'Mars/Olympus'" in p for p in found)
    path.write_text(path.read_text().replace(", timezone: Mars/Olympus", ""))
    (found,) = problems(path)
    assert f":{line_of(path, 'nope.txt')}: lists.games.files.0: list file not found" in found


def test_validate_command_reports_errors_and_exit_code(tmp_path):
    bad = write_policy(tmp_path, "rules:\n  - {id: x, lists: [nothing], action: block, reason: y}\n")
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "validate", str(bad)], capture_output=True,
                         text=True, cwd=ROOT)
    assert run.returncode == 1
    assert f"error: {bad}:{line_of(bad, 'nothing')}: rules.0.lists.0: unknown list 'nothing'" in run.stderr
    good = subprocess.run([sys.executable, "-m", "gateway", "policy", "validate", str(DEMO_POLICY)],
                          capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == 0, good.stderr
    assert "valid" in good.stdout


def test_reload_command_refuses_an_invalid_file_and_marks_a_valid_one(tmp_path):
    import os

    policy = write_policy(tmp_path)
    os.utime(policy, ns=(1_000_000_000, 1_000_000_000))
    ok = subprocess.run([sys.executable, "-m", "gateway", "policy", "reload", str(policy)], capture_output=True,
                        text=True, cwd=ROOT)
    assert ok.returncode == 0 and "running gateways load it" in ok.stdout
    assert policy.stat().st_mtime_ns > 1_000_000_000
    policy.write_text(policy.read_text() + "rules: [{id: x, action: maybe, reason: y}]\n")
    os.utime(policy, ns=(1_000_000_000, 1_000_000_000))
    bad = subprocess.run([sys.executable, "-m", "gateway", "policy", "reload", str(policy)], capture_output=True,
                         text=True, cwd=ROOT)
    assert bad.returncode == 1 and "rules.0.action" in bad.stderr
    # Refused: running gateways are not told about it.
    assert policy.stat().st_mtime_ns == 1_000_000_000


def test_an_unknown_upload_list_is_named_with_its_line(tmp_path):
    path = write_policy(tmp_path, """
lists:
  social: {domains: [social.example]}
uploads:
  lists: [social, socal]
""")  # fmt: skip
    found = problems(path)
    assert any(p.startswith(f"{path}:{line_of(path, 'lists: [social, socal]')}: uploads.lists.1: unknown list 'socal'")
               for p in found), found  # fmt: skip
