"""The policy's content section: every error names its file, line and field, and a bad phrase-file line refuses
the policy like a bad list-file line."""

import subprocess
import sys

import pytest

from gateway.policy.compiled import load_compiled
from gateway.policy.loader import PolicyError
from tests.support.policies import ROOT, write_policy

SECTION = """
content:
  enabled: true
  context: [content/context.txt]
  misspellings: [content/misspellings.txt]
  page_thresholds:
    default: {flag: 5, block: 10}
  categories:
    suicide: {phrases: [content/suicide.txt], search_terms: [content/search.txt]}
"""
GOOD = {
    "suicide.txt": "5 want to die\n",
    "search.txt": "5 suicide methods\n",
    "context.txt": "-2 lesson\n",
    "misspellings.txt": "sucide suicide\n",
}


def policy_with(tmp_path, section: str = SECTION, **files: str):
    (tmp_path / "content").mkdir(exist_ok=True)
    for name, text in {**GOOD, **files}.items():
        (tmp_path / "content" / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return write_policy(tmp_path, section)


def problems(path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_compiled(path)
    return [str(p) for p in caught.value.problems]


def test_a_good_section_compiles_and_its_files_are_watched(tmp_path):
    compiled = load_compiled(policy_with(tmp_path))
    assert compiled.content is not None
    assert tmp_path / "content" / "suicide.txt" in compiled.list_files
    assert tmp_path / "content" / "misspellings.txt" in compiled.list_files


def test_off_unless_enabled(tmp_path):
    assert load_compiled(write_policy(tmp_path)).content is None


def test_a_bad_phrase_line_names_the_file_and_line(tmp_path):
    bad = "# comment\n5 want to die\nwant to die\n0 zero weight\n99 too heavy\n5\n5 a\n"
    found = problems(policy_with(tmp_path, **{"suicide.txt": bad}))
    phrase_file = tmp_path / "content" / "suicide.txt"
    assert f"{phrase_file}:3: content.categories.suicide.phrases.0: expected `weight phrase`" in found[0]
    assert found[1].startswith(f"{phrase_file}:4: ") and "not 0" in found[1]
    assert found[2].startswith(f"{phrase_file}:5: ") and "from -20 to 20" in found[2]
    assert found[3].startswith(f"{phrase_file}:6: ") and "no phrase" in found[3]
    assert found[4].startswith(f"{phrase_file}:7: ") and "shorter than 3 letters" in found[4]
    # …and the policy line that names the file.
    assert any(p.startswith(f"{tmp_path / 'policy.yaml'}:") and "not a valid phrase file (5 bad lines)" in p
               for p in found)  # fmt: skip


def test_a_binary_or_non_utf8_phrase_file_is_refused(tmp_path):
    found = problems(policy_with(tmp_path, **{"search.txt": b"5 ok\n5 \xff\xfe bad\n"}))
    assert f"{tmp_path / 'content' / 'search.txt'}:2: " in found[0] and "not UTF-8" in found[0]
    found = problems(policy_with(tmp_path, **{"context.txt": b"-2 lesson\n\x00\x01\x02"}))
    assert "binary content" in found[0]


def test_a_bad_misspelling_line_is_refused(tmp_path):
    found = problems(policy_with(tmp_path, **{"misspellings.txt": "sucide suicide\nonly-one\n"}))
    assert found[0].startswith(f"{tmp_path / 'content' / 'misspellings.txt'}:2: content.misspellings.0: ")


def test_section_errors_name_the_policy_line_and_field(tmp_path):
    section = SECTION.replace("  page_thresholds:\n    default: {flag: 5, block: 10}\n", """\
  page_thresholds:
    default: {flag: 10, block: 5}
    groups: {pupils: {flag: 1, block: 2}}
  surprise: true
""") + "    drugs: {phrases: [content/missing.txt]}\n"  # fmt: skip
    policy = policy_with(tmp_path, section)
    found = "\n".join(problems(policy))

    def line(text: str) -> int:
        return next(i for i, row in enumerate(policy.read_text().splitlines(), 1) if text in row)

    threshold = line("default: {flag: 10")
    assert f"{policy}:{threshold}: content.page_thresholds.default: block (5) is below flag (10)" in found
    assert f"{policy}:{line('pupils:')}: content.page_thresholds.groups.pupils: unknown group 'pupils'" in found
    assert f"{policy}:{line('surprise')}: content.surprise: Extra inputs are not permitted" in found
    assert f"{policy}:{line('missing.txt')}: content.categories.drugs.phrases.0: phrase file not found" in found


def test_validate_command_reports_a_bad_phrase_line(tmp_path):
    bad = policy_with(tmp_path, **{"suicide.txt": "5 want to die\nnonsense\n"})
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "validate", str(bad)], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    assert run.returncode == 1
    assert f"{tmp_path / 'content' / 'suicide.txt'}:2: content.categories.suicide.phrases.0:" in run.stderr
