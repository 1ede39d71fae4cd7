"""The console's "a rule or list change" impact preview: the hand-counted log of tests/test_policy_change_preview.py
on SQLite and PostgreSQL, the edit to make, refusals, roles, escaping and the audit trail."""

from __future__ import annotations

import html as markup
import json
import re
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from gateway.store.engine import make_engine
from gateway.store.models.audit import AuditEvent
from tests.console.test_console_app import sign_in
from tests.store.databases import pg_schema_url  # noqa: F401 - a fixture
from tests.test_policy_change_preview import REPLAYED, seed_log, write_policy


@pytest.fixture(params=["sqlite", "postgres"])
def log_url(request, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'console.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")[1]
    seed_log(url, datetime.now(UTC))
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    seed_log(url, datetime.now(UTC))
    return url


def console_app(url: str, tmp_path, with_policy: bool = True):  # type: ignore[no-untyped-def]
    from gateway.web.app import ConsoleConfig, create_app

    policy = str(write_policy(tmp_path / "policy")) if with_policy else None
    return create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), policy_path=policy))


def signed_in(app, role: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert sign_in(client, role, "correct horse battery").status_code == 302
    return client


def text_of(html: str) -> str:
    text = markup.unescape(re.sub(r"<[^>]+>", " ", html))
    return re.sub(r"\s+", " ", text).replace(" .", ".").replace(" ;", ";")


def section(html: str, ident: str) -> str:
    found = re.search(rf'<section id="{ident}">(.*?)</section>', html, re.S)
    assert found, f"no section {ident}"
    return text_of(found.group(1))


def preview(client, **fields) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    response = client.get("/impact/change?" + urlencode(fields, doseq=True))
    return response.status_code, response.get_data(as_text=True)


def audited(url: str) -> list[AuditEvent]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = list(connection.execute(select(AuditEvent).where(AuditEvent.action == "preview_policy_change")))
    engine.dispose()
    return rows


def test_the_officer_sees_both_directions_and_the_edit(log_url, tmp_path):
    client = signed_in(console_app(log_url, tmp_path), "officer")
    form = client.get("/impact/change").get_data(as_text=True)
    assert 'href="/impact"' in form and 'href="/impact/change"' in form  # the two tabs
    assert "<option>games</option>" in form and "<option>games-lessons</option>" in form
    status, html = preview(client, kind="remove_from_list", list="games", domains="roblox.com")
    assert status == 200, html
    assert f"Over the last 7 days ({REPLAYED} requests)" in text_of(html)
    assert ("Would have let through (blocked now) 3 requests by 2 people to 1 hosts; 0 of them flagged to the "
            "officer. Host Requests www.roblox.com 3") in section(html, "change-let-through")  # fmt: skip
    assert "0 requests by 0 people to 0 hosts." in section(html, "change-newly-blocked")
    edit = section(html, "change-edit")
    assert "(lists.games.domains): the list's `domains:` becomes domains: []" in edit
    assert "gateway policy reload" in edit and "policy.yaml" in edit
    # Reading the log is audited, with what was proposed.
    [row] = audited(log_url)
    assert row.actor == "officer" and json.loads(row.detail)["change"] == ["remove from list games: roblox.com"]


def test_the_headteacher_previews_a_new_rule_blocking_news_in_lessons(log_url, tmp_path):
    client = signed_in(console_app(log_url, tmp_path), "headteacher")
    status, html = preview(client, kind="add_rule", rule_id="pupil-news", rule_lists="news", groups="pupil",
                           periods="lesson", action="block", position="first", reason="news in lessons")  # fmt: skip
    assert status == 200, html
    assert ("3 requests by 2 people to 2 hosts. Host Requests www.bbc.co.uk 2 news.bbc.co.uk 1"
            in section(html, "change-newly-blocked"))  # fmt: skip
    assert "0 requests" in section(html, "change-let-through")
    assert re.search(r"\(rules\.0\): insert before the rule &#39;banned&#39;</p>\s*<pre>- id: pupil-news\n", html)


def test_flagging_instead_of_blocking_counts_the_flagged(sqlite_url, tmp_path):
    client = signed_in(console_app(sqlite_url, tmp_path), "officer")
    status, html = preview(client, kind="rule_action", rule="pupil-social", action="flag")
    assert status == 200
    assert "5 requests by 2 people to 1 hosts; 5 of them flagged" in section(html, "change-let-through")
    assert "change `action: block` to" in html and "<pre>action: flag</pre>" in html


def test_adding_a_site_to_a_list_counts_what_it_would_block(sqlite_url, tmp_path):
    client = signed_in(console_app(sqlite_url, tmp_path), "officer")
    status, html = preview(client, kind="add_to_list", list="games", domains="wikipedia.org")
    assert status == 200
    newly_blocked = section(html, "change-newly-blocked")
    assert "4 requests by 1 people to 1 hosts. Host Requests www.wikipedia.org 4" in newly_blocked


@pytest.mark.parametrize("role", ["dpo", "teacher", "it"])
def test_other_roles_may_not_preview_a_change(sqlite_url, tmp_path, role):
    client = signed_in(console_app(sqlite_url, tmp_path), role)
    assert client.get("/impact/change?kind=drop_rule&rule=games-lessons").status_code == 403
    assert audited(sqlite_url) == []


def test_signed_out_goes_to_sign_in(sqlite_url, tmp_path):
    response = console_app(sqlite_url, tmp_path).test_client().get("/impact/change?kind=drop_rule&rule=banned")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "remove_from_list", "list": "banned", "domains": "facebook.com"}, "marked unliftable"),
        ({"kind": "remove_from_list", "list": "iwf", "domains": "abuse.test"}, "illegal-content slot"),
        ({"kind": "drop_rule", "rule": "banned"}, "dropping it would let that list through"),
        ({"kind": "rule_action", "rule": "banned", "action": "allow"}, "may not name the unliftable list"),
        ({"kind": "add_rule", "rule_id": "open", "action": "allow", "groups": "staff", "reason": "r"},
         "may not match every site"),
        ({"kind": "add_rule", "rule_id": "fb", "domains": "m.facebook.com", "action": "allow", "reason": "r"},
         "on the unliftable list"),
        # Values a select or checkbox could not have sent: a tampered form.
        ({"kind": "add_to_list", "list": "nosuch", "domains": "x.example"}, "the policy has no list"),
        ({"kind": "drop_rule", "rule": "nosuch"}, "the policy has no rule"),
        ({"kind": "wipe"}, "kind: one of"),
        ({"kind": "rule_action", "rule": "games-lessons", "action": "open"}, "action: one of block, allow, flag"),
        ({"kind": "add_rule", "rule_id": "x", "rule_lists": "games", "groups": "teachers", "action": "block",
          "reason": "r"}, "no group"),
        ({"kind": "add_rule", "rule_id": "x", "rule_lists": "games", "periods": "playtime", "action": "block",
          "reason": "r"}, "periods"),
        ({"kind": "add_rule", "rule_id": "bad id!", "rule_lists": "games", "action": "block", "reason": "r"},
         "id: String should match"),
        ({"kind": "add_rule", "rule_id": "x", "rule_lists": "games", "action": "block"}, "reason: a rule needs one"),
        ({"kind": "add_rule", "rule_id": "x", "rule_lists": "games", "year_groups": "five", "action": "block",
          "reason": "r"}, "year groups: whole numbers"),
        ({"kind": "add_to_list", "list": "games", "domains": "not a domain!"}, "not a valid domain"),
        ({"kind": "add_to_list", "list": "games", "domains": "a" * 3000}, "domains: at most 2000 characters"),
        ({"kind": "add_rule", "rule_id": "x", "rule_lists": "games", "action": "block", "reason": "r" * 400},
         "reason: at most 300 characters"),
        ({"kind": "add_to_list", "domains": "x.example"}, "choose a list"),
    ],
)
def test_a_change_the_policy_could_never_accept_is_refused_and_the_form_kept(sqlite_url, tmp_path, fields, message):
    client = signed_in(console_app(sqlite_url, tmp_path), "officer")
    status, html = preview(client, **fields)
    assert status == 400
    refused = re.search(r'id="change-refused">(.*?)</p>', html, re.S)
    assert refused and message in refused.group(1).replace("&#39;", "'"), html
    assert 'id="change-result"' not in html
    assert f'value="{fields["kind"]}" checked' in html or fields["kind"] == "wipe"
    assert audited(sqlite_url) == []


def test_what_is_typed_comes_back_as_text_not_markup(sqlite_url, tmp_path):
    client = signed_in(console_app(sqlite_url, tmp_path), "officer")
    status, html = preview(client, kind="add_to_list", list="games", domains="<script>alert(1)</script>")
    assert status == 400 and "<script>alert" not in html
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    status, html = preview(client, kind="add_rule", rule_id="x", rule_lists="games", action="block",
                           reason="<b onmouseover=alert(1)>games</b>")  # fmt: skip
    assert status == 200 and "<b onmouseover" not in html
    assert "reason: &lt;b onmouseover=alert(1)&gt;games&lt;/b&gt;" in html


def test_the_page_says_when_the_console_has_no_policy(sqlite_url, tmp_path):
    client = signed_in(console_app(sqlite_url, tmp_path, with_policy=False), "officer")
    status, html = preview(client, kind="drop_rule", rule="games-lessons")
    assert status == 200 and "started without the policy file" in html


@pytest.mark.browser
def test_the_officer_proposes_a_change_in_chromium(sqlite_url, tmp_path):
    """Through the grant preview's tab, the form's controls and the Preview button, served as in production."""
    import os
    import threading

    from waitress.server import create_server

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    server = create_server(console_app(sqlite_url, tmp_path), host="127.0.0.1", port=0, threads=2)
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
            page.click("text=A rule or list change")
            page.check("input[name=kind][value=rule_action]")
            page.select_option("select[name=rule]", "pupil-social")
            page.select_option("select[name=action]", "flag")
            page.click("#preview-change")
            counts = " ".join(page.inner_text("#change-let-through .counts").split())
            assert counts == "5 requests by 2 people to 1 hosts; 5 of them flagged to the officer."
            assert page.locator("#change-let-through tbody tr").all_inner_texts() == ["www.tiktok.com\t5"]
            assert "action: flag" in page.inner_text("#change-edit pre")
            # The form keeps what was asked.
            assert page.is_checked("input[name=kind][value=rule_action]")
            assert page.input_value("select[name=rule]") == "pupil-social"
            browser.close()
    finally:
        server.close()
