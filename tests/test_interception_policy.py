"""`interception.pass_through`: which hosts pass through undecrypted for which group, compiled without a proxy, and
the entries refused because passing them through would switch off something the policy asks for that group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.lists.hosts import normalise_host
from gateway.policy.compiled import CompiledPolicy, load_compiled
from gateway.policy.interception import passes_through
from gateway.policy.loader import PolicyError
from gateway.policy.local_blocks import LocalEntry, with_local_blocks
from tests.support.policies import write_policy

LISTS = {
    "trusted.txt": "learning.example\nvideo.example\nillegal.example\n",
    "uploads.txt": "video.example\n",
    "vpn.txt": "vpn.example\n",
    "illegal.txt": "illegal.example\n",
    "pupil_paths.txt": "learning.example/forum\n",
    "staff_paths.txt": "wiki.example/bad\n",
    "partners.txt": "play.chatzone.example\n",
}

SECTIONS = """\
lists:
  trusted: {files: [lists/trusted.txt]}
  uploads: {files: [lists/uploads.txt]}
  vpn: {files: [lists/vpn.txt]}
  illegal: {files: [lists/illegal.txt]}
  pupil_paths: {url_files: [lists/pupil_paths.txt]}
  staff_paths: {url_files: [lists/staff_paths.txt]}
  partners: {files: [lists/partners.txt]}
illegal: [illegal]
uploads: {lists: [uploads]}
circumvention: {workaround_lists: [vpn]}
rules:
  - {id: pupil-paths, groups: [pupil], lists: [pupil_paths], action: block, reason: blocked}
  - {id: staff-paths, groups: [staff], lists: [staff_paths], action: block, reason: blocked}
"""


def compiled(tmp_path: Path, interception: str, extra: str = "") -> CompiledPolicy:
    return load_compiled(write_policy(tmp_path, SECTIONS + extra + interception, LISTS))


def refused(tmp_path: Path, interception: str, extra: str = "") -> str:
    with pytest.raises(PolicyError) as error:
        compiled(tmp_path, interception, extra)
    return str(error.value)


def passes(policy: CompiledPolicy, group: str, raw_host: str) -> bool:
    host = normalise_host(raw_host)
    assert host is not None
    bits = 0
    for _, mask in policy.domains.match(host):
        bits |= mask
    return passes_through(policy, group, host, bits)


STAFF_TRUSTED = """\
interception:
  pass_through:
    - {groups: [staff], lists: [trusted], domains: [docs.staff-tools.example]}
"""


def test_a_groups_pass_through_applies_to_that_group_alone_and_to_subdomains(tmp_path):
    policy = compiled(tmp_path, STAFF_TRUSTED)
    assert passes(policy, "staff", "learning.example")
    assert passes(policy, "staff", "cdn.learning.example")
    assert passes(policy, "staff", "docs.staff-tools.example")
    # Pupils and guests are intercepted on the same hosts; a name merely ending alike is another site.
    assert not passes(policy, "pupil", "learning.example")
    assert not passes(policy, "guest", "docs.staff-tools.example")
    assert not passes(policy, "staff", "notlearning.example")
    assert not passes(policy, "staff", "staff-tools.example")


def test_a_pupil_entry_does_not_apply_to_staff(tmp_path):
    policy = compiled(tmp_path, "interception:\n  pass_through:\n    - {groups: [pupil], domains: [maths.example]}\n")
    assert passes(policy, "pupil", "maths.example")
    assert not passes(policy, "staff", "maths.example")


def test_a_host_also_on_an_upload_controlled_list_stays_intercepted(tmp_path):
    """video.example is on the trusted list and the uploads list: uploads to it are checked, so it is inspected."""
    policy = compiled(tmp_path, STAFF_TRUSTED)
    assert not passes(policy, "staff", "video.example")
    assert not passes(policy, "staff", "upload.video.example")


def test_a_host_also_on_an_illegal_list_is_never_passed_through(tmp_path):
    policy = compiled(tmp_path, STAFF_TRUSTED)
    assert not passes(policy, "staff", "illegal.example")
    assert not passes(policy, "staff", "www.illegal.example")


def test_a_host_with_a_path_the_groups_rules_list_stays_intercepted_for_that_group_only(tmp_path):
    """learning.example/forum is blocked for pupils: a pupil pass-through of learning.example keeps it intercepted
    (the path could not be seen); staff, whose rules list no path there, pass through."""
    both = "interception:\n  pass_through:\n    - {groups: [pupil, staff], lists: [trusted]}\n"
    policy = compiled(tmp_path, both)
    assert not passes(policy, "pupil", "learning.example")
    assert passes(policy, "staff", "learning.example")


def test_a_page_blocked_later_by_the_officer_keeps_its_host_intercepted(tmp_path):
    extra = "reports: {block_list: local}\n"
    lists = dict(LISTS, **{"local.txt": ""})
    path = write_policy(tmp_path, SECTIONS.replace("lists:\n", "lists:\n  local: {files: [lists/local.txt]}\n", 1)
                        + "  - {id: local, lists: [local], action: block, reason: reported}\n" + extra + STAFF_TRUSTED,
                        lists)  # fmt: skip
    policy = load_compiled(path)
    assert passes(policy, "staff", "learning.example")
    blocked = with_local_blocks(policy, [LocalEntry("learning.example", "/bad-page")])
    assert not passes(blocked, "staff", "learning.example")
    assert passes(blocked, "staff", "docs.staff-tools.example")


def test_the_demo_policy_compiles_with_its_interception_section():
    from tests.support.policies import compile_demo

    policy = compile_demo()
    assert policy.policy.interception.pass_through, "the demo shows the section"


@pytest.mark.parametrize(("entry", "field", "says"), [
    ("{groups: [staff], lists: [illegal]}", "lists[0]", "illegal-content slot: it is never passed through"),
    ("{groups: [staff], lists: [uploads]}", "lists[0]", "uploads.lists"),
    ("{groups: [staff], lists: [vpn]}", "lists[0]", "circumvention.workaround_lists"),
    ("{groups: [staff], lists: [staff_paths]}", "lists[0]", "has paths (url_files)"),
    ("{groups: [staff], lists: [nosuch]}", "lists[0]", "unknown list 'nosuch'"),
    ("{groups: [teachers], domains: [a.example]}", "groups[0]", "unknown group 'teachers'"),
    ("{groups: [staff], domains: [www.illegal.example]}", "domains[0]", "on the list 'illegal'"),
    ("{groups: [staff], domains: [vpn.example]}", "domains[0]", "on the list 'vpn'"),
    ("{groups: [staff]}", "pass_through[0]", "must name lists or domains"),
])  # fmt: skip
def test_an_entry_naming_what_must_be_inspected_is_refused_with_its_line(tmp_path, entry, field, says):
    message = refused(tmp_path, f"interception:\n  pass_through:\n    - {entry}\n")
    assert says in message
    # The file and the entry's line: MINIMAL and SECTIONS come first, the entry is the policy's last line.
    last_line = len((tmp_path / "policy.yaml").read_text().splitlines())
    assert f"policy.yaml:{last_line}" in message and field.split("[")[0] in message


def test_passing_through_a_search_engine_is_refused_for_a_group_with_safe_search(tmp_path):
    message = refused(tmp_path, "interception:\n  pass_through:\n    - {groups: [staff], domains: [google.com]}\n")
    assert "would pass through for staff, so the gateway could not force safe search" in message
    assert "interception.pass_through[0]" in message or "interception" in message


def test_passing_through_a_locked_sign_in_host_is_refused_only_for_the_locked_groups(tmp_path):
    lock = "services: {google_sign_in: {allowed_domains: [school.example], groups: [pupil]}}\n"
    entry = "interception:\n  pass_through:\n    - {groups: [%s], domains: [accounts.google.com]}\n"
    message = refused(tmp_path, entry % "pupil", lock)
    assert "accounts.google.com would pass through for pupil" in message and "sign-in lock" in message
    # Staff have no lock: their sign-in host may pass through.
    assert passes(compiled(tmp_path, entry % "staff", lock), "staff", "accounts.google.com")


AGES = """\
age_limits:
  groups: [pupil]
  sites:
    - {name: ChatZone, minimum_age: 13, domains: [chatzone.example], sign_up: [/join]}
"""


@pytest.mark.parametrize("domain", ["chatzone.example", "www.chatzone.example", "example"])
def test_passing_through_an_age_gated_site_is_refused_for_an_age_checked_group(tmp_path, domain):
    message = refused(tmp_path, f"interception:\n  pass_through:\n    - {{groups: [pupil], domains: [{domain}]}}\n",
                      AGES)  # fmt: skip
    assert "has a minimum age for pupil" in message


def test_an_age_gated_site_may_pass_through_for_a_group_whose_age_is_not_checked(tmp_path):
    policy = compiled(tmp_path, "interception:\n  pass_through:\n    - {groups: [staff], domains: [chatzone.example]}\n",
                      AGES)  # fmt: skip
    assert passes(policy, "staff", "www.chatzone.example")


def test_an_age_gated_site_reached_through_a_list_entry_under_it_stays_intercepted(tmp_path):
    """The partners list holds play.chatzone.example, under the age-gated chatzone.example: the load-time check
    sees the policy's own names only, so the proxy asks again per host."""
    policy = compiled(tmp_path, "interception:\n  pass_through:\n    - {groups: [pupil], lists: [partners]}\n", AGES)
    assert not passes(policy, "pupil", "play.chatzone.example")


def test_policy_validate_names_a_refused_entry(tmp_path):
    path = write_policy(tmp_path, SECTIONS + "interception:\n  pass_through:\n    - {groups: [staff], lists: [uploads]}\n",
                        LISTS)  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "validate", str(path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0 and "uploads.lists" in run.stdout + run.stderr
