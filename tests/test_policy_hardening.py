"""A policy nobody can break or lift by accident or on purpose: hostile YAML, corrupt or emptied list files, and
exceptions aimed at lists the school's policy says are never accessible. Every refusal names file, line and
field, through the commands a school runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from gateway.decisions.engine import decide_target
from gateway.decisions.types import Action, Source
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.compiled import load_compiled
from gateway.policy.exceptions import ExceptionSet, compile_grant
from gateway.policy.illegal_slot import slot_warning_for_file
from gateway.policy.loader import PolicyError, load_policy
from gateway.policy.model import ExceptionGrant
from gateway.policy.shrink import check_shrink, confirmation_path
from tests.support.policies import DEMO_POLICY, ROOT, demo_policy_files, write_policy

LESSON = datetime.fromisoformat("2026-09-07T09:30")
# Each hostile file must be answered within this, not hang.
TIME_LIMIT = 20


def gateway(*args: str, timeout: float = TIME_LIMIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)  # fmt: skip


def problems(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_compiled(path)
    return [str(p) for p in caught.value.problems]


def line_of(path: Path, text: str, after: str = "") -> int:
    """The line of the first `text` (after the first `after`, if given)."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines[start:], start + 1) if text in line)


def demo_copy(folder: Path) -> Path:
    """The shipped demo policy and its lists, copied so a test may damage them."""
    demo_policy_files(folder, copy_lists=True)
    policy = folder / "default.yaml"
    shutil.copy(DEMO_POLICY, policy)
    return policy


def person(group: str, username: str | None = None) -> Identity:
    return Identity(group=group, source=IdentitySource.GIVEN, username=username)


# -- YAML that would hang or crash the loader ------------------------------------------------------------------

BILLION_LAUGHS = "lol: &a [" + ", ".join(['"lol"'] * 9) + "]\n" + "".join(
    f"l{i}: &l{i} [" + ", ".join([f"*{'a' if i == 0 else f'l{i - 1}'}"] * 9) + "]\n" for i in range(9)
)

HOSTILE_YAML = {
    "billion-laughs": (BILLION_LAUGHS, 1, "once aliases are expanded"),
    "recursive-alias": ("school: &s {name: x, inner: *s}\n", 1, "recursive alias"),
    "recursive-list": ("groups: {a: {}}\nnetworks: &n [1, *n]\n", 2, "recursive alias"),
    "list-as-key": ("school: {name: x}\n? [a, b]\n: 1\n", 2, "a key must be a plain name or value"),
    "map-as-key": ("school: {name: x}\ngroups:\n  {a: 1}: {}\n", 3, "a key must be a plain name or value"),
    "5000-digits": ("sign_in: {idle_timeout_minutes: " + "9" * 5000 + "}\n", 1, "value has 5000 digits"),
    "bad-date": ("exceptions: [{id: a, expires: 2026-02-30}]\n", 1, "day is out of range"),
    "deep-nesting": ("x: " + "[" * 3000 + "]" * 3000 + "\n", None, "nested"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_YAML))
def test_hostile_yaml_is_refused_quickly_with_file_and_line(tmp_path, name):
    text, line, message = HOSTILE_YAML[name]
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    started = time.monotonic()
    run = gateway("policy", "validate", path)
    assert time.monotonic() - started < TIME_LIMIT
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    where = f"error: {path}:{line}: " if line else f"error: {path}: "
    assert any(row.startswith(where) and message in row for row in run.stderr.splitlines()), run.stderr


def test_oversized_policy_file_is_refused(tmp_path):
    path = write_policy(tmp_path, "# padding\n" + ("#" * 1000 + "\n") * 1100)
    (found,) = [str(p) for p in pytest.raises(PolicyError, load_policy, path).value.problems]
    assert found.startswith(f"{path}: ") and "larger than" in found


def test_policy_file_that_is_not_utf8_names_the_line(tmp_path):
    path = write_policy(tmp_path)
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    (found,) = [str(p) for p in pytest.raises(PolicyError, load_policy, path).value.problems]
    assert found == f"{path}:{len(path.read_bytes().splitlines())}: not UTF-8 text"


def test_odd_ids_do_not_crash_the_reference_checks(tmp_path):
    rules = "rules:\n  - {id: [a], action: block, reason: x}\n  - {id: [a], action: block, reason: y}\n"
    path = write_policy(tmp_path, rules)
    found = [str(p) for p in pytest.raises(PolicyError, load_policy, path).value.problems]
    assert any(f":{line_of(path, 'reason: x')}: rules.0.id:" in p for p in found)


# -- Unliftable lists ------------------------------------------------------------------------------------------

HEAD_LIFTS_FACEBOOK = """
exceptions:
  - id: head-facebook
    users: [head]
    {target}
    expires: 2030-01-01T00:00
    reason: The headteacher's personal account.
"""


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("lists: [social_media_named]", "list 'social_media_named' is marked unliftable"),
        ("domains: [facebook.com]", "'facebook.com' is on the unliftable list 'social_media_named'"),
        ("domains: [www.facebook.com]", "(entry 'facebook.com')"),
        ("lists: [iwf]", "list 'iwf' is in the illegal-content slot"),
        ("domains: [cdn.illegal-content.test]", "is on the unliftable list 'illegal_test'"),
    ],
)
def test_an_exception_lifting_an_unliftable_list_is_refused(tmp_path, target, message):
    policy = demo_copy(tmp_path)
    policy.write_text(policy.read_text().replace("exceptions: []\n", HEAD_LIFTS_FACEBOOK.format(target=target)))
    run = gateway("policy", "validate", policy)
    assert run.returncode == 1
    line = line_of(policy, target, after="id: head-facebook")
    field = "exceptions.0." + ("lists.0" if target.startswith("lists") else "domains.0")
    assert f"error: {policy}:{line}: {field}: " in run.stderr and message in run.stderr, run.stderr


def test_an_exception_for_other_social_media_is_still_allowed(tmp_path):
    policy = demo_copy(tmp_path)
    policy.write_text(policy.read_text().replace(
        "exceptions: []\n", HEAD_LIFTS_FACEBOOK.format(target="lists: [social_media_other]")))  # fmt: skip
    compiled = load_compiled(policy)
    decision = decide_target(compiled, person("staff", "head"), "https://www.tiktok.com/", LESSON)
    assert (decision.action, decision.source) == (Action.ALLOW, Source.EXCEPTION)


def test_a_run_time_exception_cannot_lift_facebook(demo_policy):
    # As the console's unblock workflow will hand the engine: built in code, never seen by the loader.
    bits = {name: 1 << i for i, name in enumerate(demo_policy.names)}
    grant = ExceptionGrant(id="head-facebook", users=["head"], lists=["social_media_named", "social_media_other"],
                           domains=["facebook.com", "x.com"], expires=datetime(2030, 1, 1), reason="Approved.")
    lift = ExceptionSet((compile_grant(grant, bits, demo_policy.zone),))
    head = person("staff", "head")
    for url in ("https://www.facebook.com/", "https://x.com/", "https://scontent.cdninstagram.com/a.jpg"):
        decision = decide_target(demo_policy, head, url, LESSON, lift)
        assert (decision.action, decision.rule) == (Action.BLOCK, "social-media-named"), url
    # The same grant still lifts what is liftable.
    assert decide_target(demo_policy, head, "https://www.tiktok.com/", LESSON, lift).source is Source.EXCEPTION


BROAD_ALLOW_FIRST = """
  - id: staff-anything-after-school
    groups: [staff]
    periods: [after_school]
    action: allow
    reason: Staff may browse freely after school.
  - id: partner-cdn
    domains: [cdninstagram.com, meta.example]
    action: allow
    reason: A partner's content network.
"""


def test_an_allowing_rule_above_the_block_cannot_let_an_unliftable_host_through(tmp_path):
    # Rules are first match wins, so an allow rule placed above the named-social-media block, with domains that
    # reach under an unliftable entry or matching every site, would let it through; it does not.
    policy = demo_copy(tmp_path)
    policy.write_text(policy.read_text().replace("rules:\n", "rules:\n" + BROAD_ALLOW_FIRST, 1))
    compiled = load_compiled(policy)
    after_school = datetime.fromisoformat("2026-09-07T16:00")
    staff = person("staff", "mr.jones")
    for url in ("https://scontent.cdninstagram.com/a.jpg", "https://www.facebook.com/", "http://x.com/"):
        decision = decide_target(compiled, staff, url, after_school)
        assert (decision.action, decision.rule) == (Action.BLOCK, "social-media-named"), url
        assert decide_target(compiled, person("pupil"), url, LESSON).action is Action.BLOCK, url
    # The allowing rules still decide everything else.
    assert decide_target(compiled, staff, "https://www.tiktok.com/", after_school).rule == "staff-anything-after-school"
    assert decide_target(compiled, person("pupil"), "https://video.meta.example/", LESSON).rule == "partner-cdn"


@pytest.mark.parametrize("action", ["allow", "flag"])
@pytest.mark.parametrize(("listed", "message"), [
    ("social_media_named", "list 'social_media_named' is marked unliftable"),
    ("iwf", "list 'iwf' is in the illegal-content slot"),
])
def test_an_allowing_rule_naming_an_unliftable_list_is_refused(tmp_path, action, listed, message):
    policy = demo_copy(tmp_path)
    rule = f"  - {{id: lift-it, lists: [{listed}], action: {action}, reason: r}}\n"
    policy.write_text(policy.read_text().replace("rules:\n", "rules:\n" + rule, 1))
    run = gateway("policy", "validate", policy)
    assert run.returncode == 1
    line = line_of(policy, "id: lift-it")
    assert f"error: {policy}:{line}: rules.0.lists.0: {message}" in run.stderr, run.stderr


# -- Corrupt list files ----------------------------------------------------------------------------------------


def test_random_bytes_in_a_list_file_fail_validation_naming_file_and_line(tmp_path):
    policy = demo_copy(tmp_path)
    listed = tmp_path / "lists" / "social_media_named.txt"
    listed.write_bytes(b"facebook.com\n" + os.urandom(5000))
    run = gateway("policy", "validate", policy)
    assert run.returncode == 1
    assert f"error: {listed}:2: lists.social_media_named.files.0: " in run.stderr, run.stderr
    assert "binary content" in run.stderr or "not UTF-8 text" in run.stderr or "not a valid domain" in run.stderr
    assert f"lists.social_media_named.files.0: {listed} is not a valid list file" in run.stderr


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("facebook.com\n<html><body>Not found</body></html>\n", 2, "not a valid domain: '<html><body>not found"),
        ("facebook.com\n# comment with a NUL \0 in it\n", 2, "binary content (NUL byte)"),
        ("facebook.com\ncaf\xe9.example\n".encode("latin-1"), 2, "not UTF-8 text"),
        ("x.com\ninstagram.com\nthis is not a domain list\n", 3, "not a valid domain"),
    ],
)
def test_garbage_lines_refuse_the_list(tmp_path, body, line, reason):
    listed = tmp_path / "lists" / "named.txt"
    policy = write_policy(tmp_path, "lists:\n  named: {files: [lists/named.txt]}\n", {"named.txt": ""})
    listed.write_bytes(body if isinstance(body, bytes) else body.encode())
    found = problems(policy)
    assert any(p.startswith(f"{listed}:{line}: lists.named.files.0: {reason}") for p in found), found
    assert any(p.startswith(f"{policy}:{line_of(policy, 'named:')}: lists.named.files.0: ") for p in found), found


def test_a_big_corrupt_list_is_refused_from_its_cache_too(tmp_path):
    # UT1-sized files are read through their compiled cache: a file with bad lines stays refused after the cache
    # is written, and the lines are still named.
    imports = tmp_path / "ut1" / "games"
    imports.mkdir(parents=True)
    (imports / "domains").write_text("".join(f"game-{i}.example\n" for i in range(30_000)) + "not a domain!\n")
    policy = write_policy(tmp_path, "imports: ut1\nlists:\n  games: {ut1: [games]}\n")
    for _ in range(2):
        found = problems(policy)
        assert any(p.startswith(f"{imports / 'domains'}:30001: lists.games.ut1.0: not a valid domain") for p in found)
    assert (imports / "domains.u64.json").exists()


def test_a_valid_big_list_is_checked_once(tmp_path, monkeypatch):
    imports = tmp_path / "ut1" / "games"
    imports.mkdir(parents=True)
    (imports / "domains").write_text("".join(f"game-{i}.example\n" for i in range(30_000)))
    policy = write_policy(tmp_path, "imports: ut1\nlists:\n  games: {ut1: [games]}\n")
    assert load_compiled(policy).list_sizes["games"] == 30_000

    import gateway.lists.cache as cache

    def no_parse(*args, **kwargs):
        raise AssertionError("a valid list with a fresh cache was parsed again")

    monkeypatch.setattr(cache, "read_domain_file", no_parse)
    assert load_compiled(policy).list_sizes["games"] == 30_000


def test_real_ut1_import_loads_cleanly(tmp_path):
    ut1 = Path("/work/shared/data/ut1")
    if not (ut1 / "social_networks" / "domains").is_file():
        pytest.skip("UT1 data not available on this machine")
    from gateway.lists.ut1 import import_ut1

    import_ut1(ut1, tmp_path / "ut1", ["social_networks", "gambling"])
    policy = write_policy(tmp_path, "imports: ut1\nlists:\n  social: {ut1: [social_networks, gambling]}\n")
    assert load_compiled(policy).list_sizes["social"] > 1000


# -- Shrinking lists -------------------------------------------------------------------------------------------


def test_a_reload_that_empties_or_halves_a_list_is_refused_until_confirmed(tmp_path):
    policy = demo_copy(tmp_path)
    # Emptying the social-media list also breaks the demo's expected decisions (tests/test_policy_expectations.py);
    # only the shrink check is under test here.
    data = yaml.safe_load(policy.read_text())
    del data["expect"]
    policy.write_text(yaml.safe_dump(data))
    running = load_compiled(policy)
    listed = tmp_path / "lists" / "social_media_named.txt"
    original = listed.read_text()

    listed.write_text("# emptied by a failed download\n")
    emptied = load_compiled(policy)
    with pytest.raises(PolicyError) as caught:
        check_shrink(running, emptied)
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{policy}:{line_of(policy, 'social_media_named:')}: lists.social_media_named: ")
    assert "from 22 to 0 entries (emptied)" in problem and "--confirm-shrink" in problem

    listed.write_text("\n".join(original.splitlines()[:12]) + "\n")  # the X/Twitter part: 7 of 22 left
    with pytest.raises(PolicyError, match="cut by"):
        check_shrink(running, load_compiled(policy))
    listed.write_text(original + "\n".join(f"extra{i}.example" for i in range(100)) + "\n")
    check_shrink(running, load_compiled(policy))  # growing is always fine

    # The operator confirms the emptied list; the confirmation covers that content only.
    listed.write_text("# emptied on purpose\n")
    run = gateway("policy", "reload", "--confirm-shrink", "--db", f"sqlite:///{tmp_path / 'none.db'}", policy)
    assert run.returncode == 0, run.stderr
    assert confirmation_path(policy).is_file()
    check_shrink(running, load_compiled(policy))
    listed.write_text("# emptied on purpose\nfacebook.com\n")
    with pytest.raises(PolicyError, match="cut by 96%"):
        check_shrink(running, load_compiled(policy))


# -- The illegal-content slot ----------------------------------------------------------------------------------


def test_validate_warns_loudly_about_an_empty_illegal_slot_and_the_test_entry_blocks(tmp_path):
    policy = demo_copy(tmp_path)
    run = gateway("policy", "validate", policy)
    assert run.returncode == 0
    assert "THE ILLEGAL-CONTENT SLOT IS EMPTY" in run.stderr and "(iwf, ctiru)" in run.stderr
    assert "!" * 78 in run.stderr
    check = gateway("check", "--policy", policy, "--group", "staff", "--json", "http://illegal-content.test/")
    assert '"action": "block", "source": "illegal"' in check.stdout and '"list": "illegal_test"' in check.stdout

    (tmp_path / "lists" / "illegal_iwf.txt").write_text("abuse-content.invalid\n")
    filled = gateway("policy", "validate", policy)
    assert filled.returncode == 0 and "ILLEGAL-CONTENT SLOT" not in filled.stderr
    assert slot_warning_for_file(policy) is None
    assert "SLOT IS EMPTY" in slot_warning_for_file(DEMO_POLICY)


def test_a_test_entries_list_may_hold_only_test_names(tmp_path):
    policy = write_policy(tmp_path,
                          "lists:\n  check: {files: [lists/check.txt], test_entries: true}\nillegal: [check]\n",
                          {"check.txt": "illegal-content.test\nreal-site.example\n"})
    found = problems(policy)
    assert any("may hold only names under .test, not 'real-site.example'" in p for p in found), found
