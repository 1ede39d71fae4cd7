"""A trust's console, page by page: personal-account permissions, curriculum windows, grants in force, local blocks,
the impact preview and My classes keep an account limited to one site to that site's records, however it asks (a
forged `site=`, another site's ids in URLs and forms), while a trust-wide account sees every site. Both schools have
a 5B: a teacher at one never sees the other's pupils, nor opens a window for them. Real SQLite and PostgreSQL, rows
written by the access-log writer, the console driven through its test client."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.types import Identity
from gateway.policy.compiled import load_compiled
from gateway.policy.model import ExceptionGrant
from gateway.store.access_rows import access_row
from gateway.store.accounts import create_user
from gateway.store.bans import ban_person
from gateway.store.engine import make_engine
from gateway.store.grants import add_grant, grants_in_force
from gateway.store.local_blocks import add_block
from gateway.store.models.grants import GrantRecord
from gateway.store.models.reports import LocalBlock
from gateway.store.models.permissions import PersonalPermission
from gateway.store.models.windows import CurriculumWindow
from gateway.store.permissions import grant_permission
from gateway.store.windows import ask
from gateway.store.writer import AccessLogWriter
from gateway.web.app import ConsoleConfig, create_app
from tests.store.databases import db_url, pg_schema_url  # noqa: F401  (fixtures)
from tests.support.console import PASSWORD, post, signed_in
from tests.support.policies import MINIMAL

LONDON = ZoneInfo("Europe/London")
RULES = """\
lists:
  games: {domains: [north-games.example, south-games.example]}
rules:
  - {id: no-games, lists: [games], action: block, reason: Games are not allowed}
curriculum: {max_window_days: 5}
"""
# Both schools have a 5B, each with its own teacher.
ROSTERS = {
    "north": [Person("amy", "Amy North", "pupil", year_group=5, school_class="5B"),
              Person("mrs.n", "Nora North", "staff", teaches=frozenset({"5B"}))],
    "south": [Person("ben", "Ben South", "pupil", year_group=5, school_class="5B"),
              Person("mr.s", "Sam South", "staff", teaches=frozenset({"5B"}))],
}  # fmt: skip
ACCOUNTS = {"north.head": ("headteacher", ("north",)), "north.officer": ("officer", ("north",)),
            "mrs.n": ("teacher", ("north",)), "mr.s": ("teacher", ("south",)),
            "trust.head": ("headteacher", ()), "trust.officer": ("officer", ())}  # fmt: skip
PUPILS = {"north": Identity(group="pupil", client_ip="10.10.1.1", username="amy", school_class="5B", year_group=5),
          "south": Identity(group="pupil", client_ip="10.10.2.1", username="ben", school_class="5B", year_group=5)}


def _records(url: str, policy: Path, now: datetime) -> dict[str, dict[str, int]]:
    """For each site: a permission, an asked-for window, a grant and a local block; their ids. And one grant and one
    block every school follows (made for no school)."""
    compiled = load_compiled(policy)
    today = now.astimezone(LONDON).date()
    starts = datetime.combine(today + timedelta(days=1), time(0), LONDON).astimezone(UTC)
    ids: dict[str, dict[str, int]] = {}
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        for site, roster in ROSTERS.items():
            import_people(s, roster, now, site=site, only_site=True)
        for site, pupil, teacher in (("north", "amy", "mrs.n"), ("south", "ben", "mr.s")):
            permission = grant_permission(s, compiled, username=pupil, lists=["games"], domains=[],
                                          expires=now + timedelta(days=7), exclude_lessons=False,
                                          reason=f"{site} permission", by=f"{site}.head", now=now)  # fmt: skip
            window = ask(s, compiled, teacher=teacher, school_class="5B", lists=["games"], domains=[],
                         purpose=f"{site} purpose", starts=starts, ends=starts + timedelta(days=1), now=now)
            grant = add_grant(s, ExceptionGrant(id="new", groups=["staff"], lists=["games"], reason=f"{site} grant",
                                                expires=now + timedelta(days=7)), created_by="test", now=now, site=site)
            block = add_block(s, host=f"{site}-block.example", path_prefix=None, reason=f"{site} block", by="test",
                              now=now, site=site)  # fmt: skip
            ban_person(s, username=pupil, display_name=pupil, reason=f"{site} ban", created_by="test", now=now,
                       site=site)  # fmt: skip
            ids[site] = {"permission": permission.id, "window": window.id, "grant": grant, "block": block.id}
        ids["every"] = {
            "grant": add_grant(s, ExceptionGrant(id="new", groups=["staff"], lists=["games"],
                                                 expires=now + timedelta(days=7), reason="every school's grant"),
                               created_by="test", now=now),
            "block": add_block(s, host="every-block.example", path_prefix=None, reason="every school's block",
                               by="test", now=now).id,
        }  # fmt: skip
        for username, (role, sites) in ACCOUNTS.items():
            create_user(s, username, username.title(), role, PASSWORD, sites)
    engine.dispose()
    return ids


@pytest.fixture
def trust(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    policy = tmp_path / "policy.yaml"
    policy.write_text(MINIMAL.replace("terms: [{name: Autumn, start: 2026-09-03, end: 2026-12-18}]",
                                      "terms: [{name: Always, start: 2000-01-01, end: 2099-12-31}]") + RULES)
    now = datetime.now(UTC)
    writer = AccessLogWriter(db_url, tmp_path / "spool").start()
    # Amy tried North's game once; Ben tried South's twice.
    for n, site in enumerate(("north", "south", "south")):
        decision = Decision(Action.BLOCK, Source.RULE, "test", PeriodKind.LESSON, f"{site}-games.example",
                            rule="no-games", list="games")  # fmt: skip
        writer.submit(access_row(identity=PUPILS[site], decision=decision, instant=now - timedelta(seconds=30 + n),
                                 method="GET", scheme="https", host=f"{site}-games.example", path="/", query="",
                                 status=403, size=100, keep_query=False, site=site))  # fmt: skip
    writer.close()
    ids = _records(db_url, policy, now)
    app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    return app, ids


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


# (account limited to North, page, North's mark, South's mark, trust-wide account)
LISTS = [
    ("north.head", "/permissions/", "north permission", "south permission", "trust.head"),
    ("north.head", "/windows/", "north purpose", "south purpose", "trust.head"),
    ("north.head", "/grants/", "north grant", "south grant", "trust.head"),
    ("north.officer", "/reports/blocks", "north-block.example", "south-block.example", "trust.officer"),
    ("north.officer", "/impact?lists=games&action=allow", "north-games.example", "south-games.example",
     "trust.officer"),
    ("mrs.n", "/my-classes/", "Amy North", "Ben South", None),
    ("mrs.n", "/my-classes/", "north-games.example", "south-games.example", None),
    ("mrs.n", "/windows/mine", "north purpose", "south purpose", None),
]  # fmt: skip


@pytest.mark.parametrize(("account", "path", "north", "south", "trust_wide"), LISTS)
def test_a_page_lists_only_the_accounts_site_and_a_trust_wide_account_sees_both(  # type: ignore[no-untyped-def]
    trust, account, path, north, south, trust_wide
) -> None:
    app, _ = trust
    page = text(signed_in(app, account).get(path))
    assert north in page and south not in page
    if trust_wide:
        page = text(signed_in(app, trust_wide).get(path))
        assert north in page and south in page


def test_the_other_schools_5b_is_not_a_class_the_teacher_teaches(trust) -> None:  # type: ignore[no-untyped-def]
    app, _ = trust
    north, south = signed_in(app, "mrs.n"), signed_in(app, "mr.s")
    assert "Ben South" in text(south.get("/my-classes/")) and "Amy North" not in text(south.get("/my-classes/"))
    # Naming the other school changes nothing: it is not one of the teacher's classes, and its pupils stay hidden.
    assert north.get("/my-classes/?class=5B&site=south").status_code == 403
    assert "Ben South" not in text(north.get("/my-classes/?class=5B&site=north"))
    # Supervising another school's banned pupil of the same class name is refused; so is a window for their 5B.
    assert post(north, "/bans/supervise", username="ben", how="minutes", minutes="30").status_code == 404
    refused = post(north, "/windows/mine", school_class="5B", site="south", lists=["games"], when="days",
                   first_day=datetime.now(LONDON).date().isoformat(),
                   last_day=datetime.now(LONDON).date().isoformat(), purpose="forged")  # fmt: skip
    assert refused.status_code == 400 and "does not say you teach" in text(refused)


def test_a_window_opens_only_at_its_classs_school(trust) -> None:  # type: ignore[no-untyped-def]
    app, ids = trust
    head = signed_in(app, "trust.head")
    assert post(head, f"/windows/{ids['north']['window']}/approve", note="fine").status_code == 302
    engine = make_engine(app.config["GATEWAY"].db_url)
    with Session(engine) as s:
        window = s.get(CurriculumWindow, ids["north"]["window"])
        assert window is not None and window.site == "north"
        # South's gateway follows its own grants and those for every school: North's 5B window is not among them.
        south = [g.grant.reason for g in grants_in_force(s, datetime.now(UTC), "south")[0]]
        north = [g.grant.reason for g in grants_in_force(s, datetime.now(UTC), "north")[0]]
        assert not any("north purpose" in r for r in south) and any("north purpose" in r for r in north)
        permission = s.get(PersonalPermission, ids["north"]["permission"])
        assert permission is not None and permission.site == "north"
    engine.dispose()


# (account limited to North, method, path on South's record (or every school's), form)
ACTS = [
    ("north.head", "get", "/windows/{south[window]}", {}),
    ("north.head", "post", "/windows/{south[window]}/approve", {"note": "x"}),
    ("north.head", "post", "/windows/{south[window]}/reject", {"note": "x"}),
    ("north.head", "post", "/windows/{south[window]}/close", {}),
    ("north.head", "post", "/windows/{south[window]}/seen", {}),
    ("mrs.n", "post", "/windows/{south[window]}/withdraw", {}),
    ("north.head", "post", "/permissions/{south[permission]}/revoke", {}),
    ("north.officer", "post", "/permissions/{south[permission]}/confirm", {"note": "controls in place"}),
    ("north.head", "post", "/grants/{south[grant]}/end", {}),
    ("north.head", "post", "/grants/{every[grant]}/end", {}),
    ("north.officer", "post", "/reports/blocks/{south[block]}/remove", {"reason": "x"}),
    ("north.officer", "post", "/reports/blocks/{every[block]}/remove", {"reason": "x"}),
    ("north.head", "get", "/permissions/?site=south", {}),
    ("north.head", "get", "/windows/?site=south", {}),
    ("north.head", "get", "/windows/?site=nowhere", {}),
]  # fmt: skip


@pytest.mark.parametrize(("account", "method", "path", "form"), ACTS)
def test_another_sites_record_is_not_found_and_nothing_changes(  # type: ignore[no-untyped-def]
    trust, account, method, path, form
) -> None:
    app, ids = trust
    client = signed_in(app, account)
    url = path.format(south=ids["south"], every=ids["every"])
    response = client.get(url) if method == "get" else post(client, url, **form)
    assert response.status_code == 404, text(response)[:300]
    engine = make_engine(app.config["GATEWAY"].db_url)
    with Session(engine) as s:
        window = s.get(CurriculumWindow, ids["south"]["window"])
        permission = s.get(PersonalPermission, ids["south"]["permission"])
        assert window is not None and window.status == "asked" and window.seen_by_head_at is None
        assert permission is not None and permission.revoked_at is None and permission.confirmed_by is None
        for key in ("south", "every"):
            assert s.get(GrantRecord, ids[key]["grant"]).revoked_at is None  # type: ignore[union-attr]
            assert s.get(LocalBlock, ids[key]["block"]).removed_at is None  # type: ignore[union-attr]
    engine.dispose()


def test_a_permission_for_another_sites_person_is_refused_as_for_nobody(trust) -> None:  # type: ignore[no-untyped-def]
    app, _ = trust
    until = (datetime.now(LONDON).date() + timedelta(days=3)).isoformat()
    refused = post(signed_in(app, "north.head"), "/permissions/", username="ben", lists="games", until=until,
                   reason="forged")  # fmt: skip
    assert refused.status_code == 400 and "&#39;ben&#39; is not in the roster" in text(refused)
    made = post(signed_in(app, "trust.head"), "/permissions/", username="ben", lists="games", until=until,
                reason="trust-wide")  # fmt: skip
    assert made.status_code == 302
    engine = make_engine(app.config["GATEWAY"].db_url)
    with Session(engine) as s:
        assert [p.site for p in s.query(PersonalPermission).filter_by(reason="trust-wide")] == ["south"]
        assert s.query(PersonalPermission).filter_by(reason="forged").count() == 0
    engine.dispose()
