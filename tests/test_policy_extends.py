"""A site's policy over a trust's base (`extends:`): what merges how, errors naming whichever file is wrong, cycles
refused, the shipped trust layout valid, and a running gateway reloading a site when only its base changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from gateway.decisions.engine import decide_target
from gateway.decisions.types import Action
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.compiled import load_compiled
from gateway.policy.loader import PolicyError, load_policy
from gateway.store.migrate import upgrade
from tests.support.clients import httpx_client
from tests.support.mitmdump import Mitmdump
from tests.support.policies import MINIMAL, ROOT

LESSON = datetime(2026, 9, 7, 9, 30)
LUNCH = datetime(2026, 9, 7, 12, 30)
PUPIL = "127.0.0.2"


def pupil() -> Identity:
    return Identity(group="pupil", source=IdentitySource.GIVEN)


def trust(folder: Path, base_extra: str = "", site_extra: str = "") -> Path:
    """folder/trust/base.yaml (MINIMAL, a games list and a trust rule) and folder/sites/north.yaml over it."""
    (folder / "trust" / "lists").mkdir(parents=True)
    (folder / "sites" / "lists").mkdir(parents=True)
    (folder / "trust" / "lists" / "games.txt").write_text("games.example\n")
    (folder / "sites" / "lists" / "north_only.txt").write_text("north-blocked.example\n")
    (folder / "trust" / "base.yaml").write_text(MINIMAL + textwrap.dedent("""\
        lists:
          games: {files: [lists/games.txt]}
        rules:
          - {id: trust-games, groups: [pupil], lists: [games], action: block, reason: the trust blocks games}
        """) + textwrap.dedent(base_extra))  # fmt: skip
    site = folder / "sites" / "north.yaml"
    site.write_text(textwrap.dedent("""\
        extends: ../trust/base.yaml
        school: {name: North School, site: north}
        lists:
          north_only: {files: [lists/north_only.txt]}
        rules:
          - {id: north-games-at-lunch, groups: [pupil], periods: [lunch], lists: [games], action: allow,
             reason: north lets pupils play at lunch}
          - {id: north-own, lists: [north_only], action: block, reason: north blocks this}
        """) + textwrap.dedent(site_extra))  # fmt: skip
    return site


def problems(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return [str(p) for p in caught.value.problems]


def test_a_site_merges_over_the_base_its_rules_first(tmp_path):
    site = trust(tmp_path)
    loaded = load_policy(site)
    policy = loaded.policy
    # Scalars replaced, maps merged: the base's contact and groups stay.
    assert (policy.school.name, policy.school.site, policy.school.contact) == ("North School", "north",
                                                                               "the e-safety officer")  # fmt: skip
    assert set(policy.groups) == {"pupil", "staff", "guest"}
    assert [r.id for r in policy.rules] == ["north-games-at-lunch", "north-own", "trust-games"]
    assert loaded.sources == (site.resolve(), (tmp_path / "trust" / "base.yaml").resolve())
    compiled = load_compiled(site)
    # The base's list file is read from the base's folder, the site's from the site's.
    assert decide_target(compiled, pupil(), "https://games.example/", LESSON).action is Action.BLOCK
    assert decide_target(compiled, pupil(), "https://games.example/", LUNCH).action is Action.ALLOW
    assert decide_target(compiled, pupil(), "https://north-blocked.example/", LESSON).action is Action.BLOCK
    # Every file is watched, so a change to the base reloads the site.
    assert (tmp_path / "trust" / "base.yaml").resolve() in compiled.list_files


def test_an_error_in_the_base_names_the_base_file_line_and_field(tmp_path):
    site = trust(tmp_path, base_extra="default: {action: explode}\n")
    base = (tmp_path / "trust" / "base.yaml").resolve()
    line = next(i for i, text in enumerate(base.read_text().splitlines(), 1) if "explode" in text)
    found = problems(site)
    assert any(p.startswith(f"{base}:{line}: default.action:") for p in found), found


def test_an_error_in_the_site_names_the_site_file(tmp_path):
    site = trust(tmp_path, site_extra="rules_typo: []\n")
    line = next(i for i, text in enumerate(site.read_text().splitlines(), 1) if "rules_typo" in text)
    found = problems(site)
    assert any(p.startswith(f"{site}:{line}: rules_typo:") for p in found), found
    # A site rule naming a list neither defines: the site's line.
    site = trust(tmp_path / "again", site_extra="illegal: [nonesuch]\n")
    line = next(i for i, text in enumerate(site.read_text().splitlines(), 1) if "nonesuch" in text)
    assert any(p.startswith(f"{site}:{line}: illegal.0: unknown list 'nonesuch'") for p in problems(site))


def test_a_base_item_after_the_sites_keeps_its_own_line(tmp_path):
    """The base's exception comes after the site's in the merged policy; an error in it still names the base's
    line, and the field as the merged policy numbers it."""
    exception = "exceptions:\n  - {{id: {0}, groups: [{1}], domains: [x.example], expires: 2027-01-01, reason: r}}\n"
    site = trust(tmp_path, base_extra=exception.format("e", "pupils"), site_extra=exception.format("s", "pupil"))
    base = (tmp_path / "trust" / "base.yaml").resolve()
    line = next(i for i, text in enumerate(base.read_text().splitlines(), 1) if "[pupils]" in text)
    assert problems(site) == [f"{base}:{line}: exceptions.1.groups.0: unknown group 'pupils' (groups: guest, pupil, staff)"]


def test_a_site_must_name_its_own_site(tmp_path):
    site = trust(tmp_path)
    site.write_text(site.read_text().replace("school: {name: North School, site: north}", "school: {name: North School}"))
    assert problems(site) == [f"{site}:1: extends: a policy that extends a base names its own school.site "
                              "(the trust's records are kept and shown by site)"]  # fmt: skip


def test_bases_extending_each_other_in_a_cycle_are_refused(tmp_path):
    site = trust(tmp_path)
    base = tmp_path / "trust" / "base.yaml"
    base.write_text("extends: ../sites/north.yaml\n" + base.read_text())
    found = problems(site)
    assert len(found) == 1 and "cycle" in found[0] and found[0].startswith(f"{base.resolve()}:1:"), found


def test_a_missing_or_unnamed_base_names_the_line_that_extends_it(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("# a site\nextends: ../nowhere/base.yaml\nschool: {name: x, site: x}\n")
    assert problems(site) == [f"{site}:2: extends: base policy not found: {(tmp_path / '../nowhere/base.yaml').resolve()}"]
    site.write_text("extends: [a, b]\nschool: {site: x}\n")
    assert problems(site) == [f"{site}:1: extends: name the base policy file, relative to this one"]


@pytest.mark.parametrize("site", ["oakfield", "riverside"])
def test_the_shipped_trust_layout_validates(site):
    policy = ROOT / "policies" / "trust" / "sites" / f"{site}.yaml"
    done = subprocess.run([sys.executable, "-m", "gateway", "policy", "validate", str(policy)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{policy}: valid" in done.stdout or "valid" in done.stdout
    checked = subprocess.run([sys.executable, "-m", "gateway", "check", "--policy", str(policy), "--group", "pupil",
                              "--at", "2026-12-02T10:00", "https://www.facebook.com/"], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)  # fmt: skip
    assert checked.returncode == 0 and checked.stdout.startswith("BLOCK"), checked.stdout + checked.stderr


@pytest.mark.e2e
def test_a_running_site_reloads_when_only_its_base_changes(tmp_path, origin):
    site = trust(tmp_path, site_extra=f"networks:\n  - {{name: loopback, subnets: [{PUPIL}/32], group: pupil}}\n")
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(db)
    proxy = Mitmdump(
        ["addons/gateway.py"],
        {"gateway_policy": site, "gateway_now": "2026-09-07T09:30", "gateway_db": db, "gateway_spool": tmp_path / "spool",
         "gateway_reload_interval_ms": 100},
        workdir=tmp_path, origin=origin, ready_line=r"policy .* loaded",
    ).start()  # fmt: skip
    try:
        def status(host: str) -> int:
            with httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=PUPIL) as http:
                return http.get(f"https://{host}/", headers={"Accept": "text/html"}).status_code

        assert status("games.example") == 403
        assert status("trust-wide.example") == 200
        mark = proxy.mark()
        base = tmp_path / "trust" / "base.yaml"
        (tmp_path / "trust" / "lists" / "games.txt").write_text("games.example\ntrust-wide.example\n")
        base.write_text(base.read_text() + "# the trust's change\n")
        proxy.wait_for_output(r"policy .* loaded", after=mark)
        assert status("trust-wide.example") == 403
    finally:
        proxy.stop()
