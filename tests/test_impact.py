"""Impact preview: a small log whose counts are known by hand, through the pure replay, the store's grouped query
(SQLite and PostgreSQL), the `gateway impact` command and the console page.

The log (all in lesson time, the last day unless said):
  amy  (pupil 5B): www.tiktok.com blocked x3, snapchat.com blocked x1, www.bbc.co.uk allowed x2,
                   www.roblox.com blocked x1, www.facebook.com blocked x2 (unliftable)
  cara (pupil 5B): www.tiktok.com blocked x2
  ben  (pupil 6A): www.tiktok.com blocked x4
  a guest tablet:  www.tiktok.com allowed x1
  not replayed:    amy www.tiktok.com x5 eight days ago; amy www.tiktok.com x1 refused by a connection check
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from gateway.decisions.impact import Change, ReplayRow, preview
from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.policy.compiled import CompiledPolicy, load_compiled
from gateway.policy.model import ExceptionGrant
from gateway.policy.store_grants import compile_store_grants
from gateway.store.access_rows import access_row
from gateway.store.accounts import create_user
from gateway.store.engine import make_engine
from gateway.store.grants import add_grant
from gateway.store.impact_rows import preview_from_log
from gateway.store.migrate import upgrade
from gateway.store.models.access_log import AccessLogEntry
from tests.store.databases import pg_schema_url  # noqa: F401 - a fixture
from tests.support.policies import always_lesson_policy

HEAD = """\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
"""
LISTS = """\
lists:
  social: {domains: [tiktok.com, snapchat.com]}
  games: {domains: [roblox.com]}
  banned: {domains: [facebook.com], unliftable: true}
  news: {domains: [bbc.co.uk]}
"""
RULES = """\
rules:
  - {id: banned, lists: [banned], action: block, reason: not on this network}
  - {id: pupil-social, groups: [pupil], lists: [social], action: block, reason: social media}
  - {id: games, lists: [games], action: block, reason: games}
"""
# The proposed change: games no longer blocked, news blocked for pupils.
PROPOSED_RULES = """\
rules:
  - {id: banned, lists: [banned], action: block, reason: not on this network}
  - {id: pupil-social, groups: [pupil], lists: [social], action: block, reason: social media}
  - {id: pupil-news, groups: [pupil], lists: [news], action: block, reason: news}
"""

AMY = Identity(group="pupil", username="amy", school_class="5B", year_group=5, device="ipad-1", client_ip="10.0.0.1")
CARA = Identity(group="pupil", username="cara", school_class="5B", year_group=5, device="ipad-2", client_ip="10.0.0.2")
BEN = Identity(group="pupil", username="ben", school_class="6A", year_group=6, device="ipad-3", client_ip="10.0.0.3")
GUEST = Identity(group="guest", device="tablet-9", client_ip="10.0.0.9")

# (who, host, logged action, times, hours ago, source)
LOG = [
    (AMY, "www.tiktok.com", Action.BLOCK, 3, 1, Source.RULE),
    (AMY, "snapchat.com", Action.BLOCK, 1, 2, Source.RULE),
    (AMY, "www.bbc.co.uk", Action.ALLOW, 2, 3, Source.DEFAULT),
    (AMY, "www.roblox.com", Action.BLOCK, 1, 4, Source.RULE),
    (AMY, "www.facebook.com", Action.BLOCK, 2, 5, Source.RULE),
    (CARA, "www.tiktok.com", Action.BLOCK, 2, 6, Source.RULE),
    (BEN, "www.tiktok.com", Action.BLOCK, 4, 7, Source.RULE),
    (GUEST, "www.tiktok.com", Action.ALLOW, 1, 8, Source.DEFAULT),
    (AMY, "www.tiktok.com", Action.BLOCK, 5, 8 * 24, Source.RULE),
    (AMY, "www.tiktok.com", Action.BLOCK, 1, 9, Source.CONNECTION),
]
REPLAYED = 16


def write(folder: Path, rules: str = RULES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "policy.yaml"
    path.write_text(always_lesson_policy(HEAD, LISTS + rules))
    return path


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="module")
def proposed_file(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("proposed"), PROPOSED_RULES)


@pytest.fixture(scope="module")
def compiled(policy_file) -> CompiledPolicy:
    return load_compiled(policy_file)


def grant(compiled: CompiledPolicy, **scope):
    """A grant as the console or CLI would make it, checked against the policy."""
    exceptions, problems = compile_store_grants(
        compiled, [ExceptionGrant(id="proposed", expires=datetime.now(UTC) + timedelta(days=1), reason="t", **scope)]
    )
    assert not problems, problems
    return exceptions


def log_rows(now: datetime) -> list[ReplayRow]:
    """The fixture as the pure replay sees it, one row a request (the connection-check row left out)."""
    return [
        ReplayRow(host, "/", who.group, who.username, who.year_group, who.school_class,
                  now - timedelta(hours=hours), who.username or who.device)  # fmt: skip
        for who, host, _, times, hours, source in LOG
        if hours < 7 * 24 and source is not Source.CONNECTION
        for _ in range(times)
    ]


def seed_log(url: str, now: datetime) -> None:
    upgrade(url)
    engine = make_engine(url)
    rows = []
    for who, host, action, times, hours, source in LOG:
        decision = Decision(action, source, "test", PeriodKind.LESSON, host)
        for n in range(times):
            rows.append(access_row(identity=who, decision=decision, instant=now - timedelta(hours=hours, seconds=n),
                                   method="GET", scheme="https", host=host, path=f"/page/{n}", query="", status=200,
                                   size=10, keep_query=False, site="main"))  # fmt: skip
    with Session(engine) as session, session.begin():
        session.execute(insert(AccessLogEntry), rows)
        for role in ("officer", "headteacher", "dpo", "teacher", "it"):
            create_user(session, role, f"{role.title()} Staff", role, "correct horse battery")
    engine.dispose()


# --- the pure replay -------------------------------------------------------------------------------------------


def test_a_class_grant_lets_through_only_that_class(compiled):
    impact = preview(compiled, log_rows(datetime.now(UTC)), grant(compiled, lists=["social"], classes=["5B"]))
    assert impact.requests == REPLAYED
    assert impact.let_through == Change(requests=6, people=2, flagged=0,
                                        hosts=(("www.tiktok.com", 5), ("snapchat.com", 1)), host_count=2)  # fmt: skip
    assert impact.newly_blocked == Change()


def test_a_flagging_grant_counts_what_would_be_flagged(compiled):
    impact = preview(compiled, log_rows(datetime.now(UTC)),
                     grant(compiled, lists=["social"], groups=["pupil"], action="flag"))  # fmt: skip
    assert (impact.let_through.requests, impact.let_through.people, impact.let_through.flagged) == (10, 3, 10)


def test_a_personal_domain_grant(compiled):
    impact = preview(compiled, log_rows(datetime.now(UTC)), grant(compiled, domains=["roblox.com"], users=["amy"]))
    assert impact.let_through.hosts == (("www.roblox.com", 1),)
    assert impact.let_through.people == 1


def test_a_grant_outside_the_periods_logged_changes_nothing(compiled):
    impact = preview(compiled, log_rows(datetime.now(UTC)), grant(compiled, lists=["social"], periods=["lunch"]))
    assert impact.let_through == Change()


def test_a_grant_already_in_force_is_not_counted_again(compiled):
    in_force = grant(compiled, lists=["social"], users=["amy"])
    impact = preview(compiled, log_rows(datetime.now(UTC)), grant(compiled, lists=["social"], classes=["5B"]),
                     in_force=in_force)  # fmt: skip
    assert impact.let_through.hosts == (("www.tiktok.com", 2),)


def test_a_grant_asked_for_the_future_is_judged_on_the_past_week(compiled):
    """A request made today starts today: the replay must not find it 'not yet started' for last week's rows."""
    later = ExceptionGrant(id="p", lists=["social"], classes=["5B"], reason="t",
                           starts=datetime.now(UTC) + timedelta(days=1), expires=datetime.now(UTC) + timedelta(days=2))
    exceptions, _ = compile_store_grants(compiled, [later])
    assert preview(compiled, log_rows(datetime.now(UTC)), exceptions).let_through.requests == 6


def test_nothing_lifts_an_unliftable_site(compiled):
    # Not even a grant built past the store's checks: the engine still refuses it.
    from gateway.policy.exceptions import ExceptionSet, compile_grant

    bits = {name: 1 << i for i, name in enumerate(compiled.names)}
    raw = compile_grant(ExceptionGrant(id="x", lists=["banned"], expires=datetime.now(UTC) + timedelta(days=1),
                                       reason="t"), bits, compiled.zone)  # fmt: skip
    assert preview(compiled, log_rows(datetime.now(UTC)), ExceptionSet((raw,))).let_through == Change()


def test_a_rule_change_counts_both_ways(compiled, proposed_file):
    impact = preview(compiled, log_rows(datetime.now(UTC)), proposed=load_compiled(proposed_file))
    assert impact.let_through.hosts == (("www.roblox.com", 1),)
    assert impact.newly_blocked == Change(requests=2, people=1, hosts=(("www.bbc.co.uk", 2),), host_count=1)


def test_sites_on_no_list_are_told_apart_by_who_asked(compiled, tmp_path):
    """Unlisted sites share remembered answers; a rule for every site still tells groups and year groups apart."""
    proposed = load_compiled(write(tmp_path, RULES + """\
  - {id: guests-nothing, groups: [guest], action: block, reason: no guests}
  - {id: year6-nothing, groups: [pupil], year_groups: [6], action: block, reason: not year 6}
"""))
    now = datetime.now(UTC)
    rows = [ReplayRow("example.org", "/", "pupil", "amy", 5, "5B", now, "amy", count=3),
            ReplayRow("example.net", "/", "guest", None, None, None, now, "tablet-9", count=2),
            ReplayRow("example.com", "/", "pupil", "ben", 6, "6A", now - timedelta(hours=1), "ben", count=4),
            ReplayRow("example.org", "/", "pupil", "cara", 5, "5B", now - timedelta(days=1), "cara")]  # fmt: skip
    impact = preview(compiled, rows, proposed=proposed)
    assert impact.newly_blocked == Change(requests=6, people=2, hosts=(("example.com", 4), ("example.net", 2)),
                                          host_count=2)  # fmt: skip
    naive = [dataclasses.replace(row, at=row.at.replace(tzinfo=None)) for row in rows]
    assert preview(compiled, naive, proposed=proposed).newly_blocked.requests == 6


def test_grouped_rows_count_as_their_requests(compiled):
    now = datetime.now(UTC)
    rows = [ReplayRow("www.tiktok.com", "/", "pupil", "cara", 5, "5B", now, "cara", count=1000),
            ReplayRow("not a host!", "/", "pupil", "cara", 5, "5B", now, "cara", count=7)]  # fmt: skip
    impact = preview(compiled, rows, grant(compiled, lists=["social"]))
    assert (impact.requests, impact.let_through.requests, impact.let_through.people) == (1000, 1000, 1)


# --- through the store -----------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_log(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'impact.db'}"
    seed_log(url, datetime.now(UTC))
    return url


def _store_preview(url: str, compiled: CompiledPolicy, extra, **kw):
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return preview_from_log(session, compiled, extra, now=datetime.now(UTC), **kw)
    finally:
        engine.dispose()


def test_the_store_replays_the_last_week_grouped(sqlite_log, compiled, proposed_file):
    impact = _store_preview(sqlite_log, compiled, grant(compiled, lists=["social"], classes=["5B"]))
    assert impact.requests == REPLAYED
    assert impact.let_through.hosts == (("www.tiktok.com", 5), ("snapchat.com", 1))
    assert impact.let_through.people == 2
    changed = _store_preview(sqlite_log, compiled, grant(compiled, lists=["games"]),
                             proposed=load_compiled(proposed_file))  # fmt: skip
    assert changed.requests == REPLAYED
    assert changed.newly_blocked.requests == 2 and changed.let_through.requests == 1


def test_the_store_counts_grants_in_force(sqlite_log, compiled):
    engine = make_engine(sqlite_log)
    with Session(engine) as session, session.begin():
        add_grant(session, ExceptionGrant(id="n", lists=["social"], users=["amy"], reason="t",
                                          expires=datetime.now(UTC) + timedelta(days=1)), created_by="test")  # fmt: skip
    engine.dispose()
    impact = _store_preview(sqlite_log, compiled, grant(compiled, lists=["social"], classes=["5B"]))
    assert impact.let_through.hosts == (("www.tiktok.com", 2),)


def test_the_store_on_postgresql(pg_schema_url, compiled, proposed_file):
    """In a schema of its own: the shared test database's access log holds other tests' rows."""
    url = pg_schema_url[1]
    seed_log(url, datetime.now(UTC))
    impact = _store_preview(url, compiled, grant(compiled, lists=["social"], classes=["5B"]))
    assert impact.let_through.hosts == (("www.tiktok.com", 5), ("snapchat.com", 1))
    changed = _store_preview(url, compiled, grant(compiled, lists=["games"]), proposed=load_compiled(proposed_file))
    assert (changed.requests, changed.newly_blocked.requests, changed.let_through.requests) == (REPLAYED, 2, 1)


# --- the command -----------------------------------------------------------------------------------------------


def gateway_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=120)


def test_the_command_prints_the_counts(sqlite_log, policy_file):
    done = gateway_cli("impact", "--db", sqlite_log, "--policy", str(policy_file), "--list", "social",
                       "--class", "5B")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Replayed {REPLAYED} requests from the last 7 days." in done.stdout
    assert "Would let through: 6 requests by 2 people to 2 hosts (0 of them flagged)" in done.stdout
    assert re.search(r"5  www\.tiktok\.com\n\s+1  snapchat\.com", done.stdout)


def test_the_command_previews_a_policy_change_as_json(sqlite_log, policy_file, proposed_file):
    import json

    done = gateway_cli("impact", "--db", sqlite_log, "--policy", str(policy_file), "--proposed-policy",
                       str(proposed_file), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["requests"] == REPLAYED
    assert result["let_through"]["hosts"] == [["www.roblox.com", 1]]
    assert result["newly_blocked"]["requests"] == 2 and result["newly_blocked"]["people"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--list", "banned"), "no exception may lift: banned"),
        (("--domain", "m.facebook.com"), "no exception may lift: m.facebook.com"),
        (("--list", "nosuch"), "does not have: nosuch"),
        (("--group", "pupil"), "must name lists or domains"),
        (("--domain", "not a domain!"), "not a valid domain"),
    ],
)
def test_the_command_refuses_what_no_grant_could_do(sqlite_log, policy_file, args, message):
    done = gateway_cli("impact", "--db", sqlite_log, "--policy", str(policy_file), *args)
    assert done.returncode == 1
    assert "refused:" in done.stderr and message in done.stderr


# --- the console page ------------------------------------------------------------------------------------------


@pytest.fixture
def console(sqlite_log, policy_file, tmp_path):
    from gateway.web.app import ConsoleConfig, create_app

    return create_app(ConsoleConfig(db_url=sqlite_log, secret_key_file=str(tmp_path / "secret"),
                                    policy_path=str(policy_file)))  # fmt: skip


def signed_in(console, role: str):  # type: ignore[no-untyped-def]
    from tests.console.test_console_app import sign_in

    client = console.test_client()
    assert sign_in(client, role, "correct horse battery").status_code == 302
    return client


def test_the_console_page_shows_the_hand_counted_preview(console):
    client = signed_in(console, "officer")
    form = client.get("/impact").get_data(as_text=True)
    assert 'href="/impact"' in form  # in the navigation
    # The unliftable list is not offered.
    assert 'value="social"' in form and 'value="banned"' not in form
    page = client.get("/impact?lists=social&classes=5B&action=allow")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    assert f"Over the last 7 days ({REPLAYED} requests)" in text
    assert "Would have let through 6 blocked requests by 2 people to 2 hosts; 0 of them flagged" in text
    assert re.search(r"<td>www\.tiktok\.com</td><td>5</td></tr><tr><td>snapchat\.com</td><td>1</td>", html)


def test_the_headteacher_previews_a_flagging_grant_and_it_is_audited(console, sqlite_log):
    from sqlalchemy import select

    from gateway.store.models.audit import AuditEvent

    client = signed_in(console, "headteacher")
    text = client.get("/impact?lists=social&groups=pupil&action=flag").get_data(as_text=True)
    assert "<strong>10</strong> of them flagged" in text
    engine = make_engine(sqlite_log)
    with engine.connect() as connection:
        actions = [row.action for row in connection.execute(select(AuditEvent))]
    engine.dispose()
    assert "preview_impact" in actions


@pytest.mark.parametrize("role", ["dpo", "teacher", "it"])
def test_other_roles_may_not_preview(console, role):
    assert signed_in(console, role).get("/impact?lists=social").status_code == 403


def test_signed_out_goes_to_sign_in(console):
    response = console.test_client().get("/impact")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("lists=banned", "no exception may lift: banned"),
        ("domains=www.facebook.com", "no exception may lift: www.facebook.com"),
        ("domains=not+a+domain%21&classes=5B", "not a valid domain"),
        ("classes=5B", "must name lists or domains"),
        ("lists=social&year_groups=five", "year groups: whole numbers"),
        ("lists=social&action=block", "action"),
        ("lists=social&periods=playtime", "periods"),
        ("lists=social&users=" + "a" * 3000, "users: at most 2000 characters"),
    ],
)
def test_a_grant_no_one_could_make_is_refused_and_the_form_kept(console, query, message):
    page = signed_in(console, "officer").get(f"/impact?{query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert 'id="impact-refused"' in html and message in html
    assert 'id="impact-result"' not in html
    if "classes=5B" in query:
        assert 'name="classes" value="5B"' in html


def test_what_is_typed_comes_back_as_text_not_markup(console):
    html = signed_in(console, "officer").get("/impact?domains=%3Cscript%3Ealert(1)%3C/script%3E").get_data(True)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_page_says_when_the_console_has_no_policy(sqlite_log, tmp_path):
    from gateway.web.app import ConsoleConfig, create_app

    app = create_app(ConsoleConfig(db_url=sqlite_log, secret_key_file=str(tmp_path / "secret")))
    html = signed_in(app, "officer").get("/impact?lists=social").get_data(as_text=True)
    assert "started without the policy file" in html


@pytest.mark.browser
def test_the_officer_previews_in_chromium(sqlite_log, policy_file, tmp_path):
    """Through the navigation link, the form's checkboxes and the Preview button, served as in production."""
    import os
    import threading

    from waitress.server import create_server

    from gateway.web.app import ConsoleConfig, create_app
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    app = create_app(ConsoleConfig(db_url=sqlite_log, secret_key_file=str(tmp_path / "secret"),
                                   policy_path=str(policy_file)))  # fmt: skip
    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.effective_port}/impact")
            page.fill("input[name=username]", "officer")
            page.fill("input[name=password]", "correct horse battery")
            page.click("button[type=submit]")
            page.click("text=Impact preview")
            assert page.locator("input[name=lists][value=banned]").count() == 0
            page.check("input[name=lists][value=social]")
            page.fill("input[name=classes]", "5B")
            page.click("#preview")
            let_through = page.inner_text("#let-through")
            assert "6 blocked requests by 2 people to 2 hosts; 0 of them flagged" in " ".join(let_through.split())
            assert page.locator("#impact-hosts tbody tr").all_inner_texts() == ["www.tiktok.com\t5", "snapchat.com\t1"]
            # The form keeps what was asked.
            assert page.is_checked("input[name=lists][value=social]")
            assert page.input_value("input[name=classes]") == "5B"
            browser.close()
    finally:
        server.close()


def test_the_page_follows_a_changed_list_file(sqlite_log, tmp_path):
    """The officer previews against the lists as they are now, not as the console first read them."""
    from gateway.web.app import ConsoleConfig, create_app

    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "social.txt").write_text("tiktok.com\n")
    policy = folder / "policy.yaml"
    policy.write_text(always_lesson_policy(HEAD, LISTS.replace("{domains: [tiktok.com, snapchat.com]}",
                                                               "{files: [social.txt]}") + RULES))  # fmt: skip
    app = create_app(ConsoleConfig(db_url=sqlite_log, secret_key_file=str(tmp_path / "secret"),
                                   policy_path=str(policy)))  # fmt: skip
    client = signed_in(app, "officer")
    assert "<strong>5</strong> blocked requests" in client.get("/impact?lists=social&classes=5B").get_data(True)
    (folder / "social.txt").write_text("tiktok.com\nsnapchat.com\n")
    os.utime(folder / "social.txt", (time.time() + 5, time.time() + 5))
    assert "<strong>6</strong> blocked requests" in client.get("/impact?lists=social&classes=5B").get_data(True)
