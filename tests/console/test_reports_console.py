"""The officer's and headteacher's report queues and the local blocks page, through the console's test client:
who may see and do what, CSRF, the audit trail, escaping of what a page or a pupil wrote, and a one-click block
landing in the store for every proxy to follow."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.store.engine import make_engine, session_factory
from gateway.store.local_blocks import LOCAL_BLOCKS, entries_in_force
from gateway.policy.local_blocks import LocalEntry
from gateway.store.models.audit import AuditEvent
from gateway.store.models.reports import Report
from gateway.store.reports import create_report
from gateway.store.versions import versions
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import seed
from tests.support.console import post, signed_in
from tests.support.policies import always_lesson_policy

HOSTILE = "<script>alert('x')</script>"
HEAD = """\
school: {name: Test Primary School, contact: the e-safety officer}
groups: {pupil: {}, guest: {}}
default_group: guest
networks:
  - {name: wifi, subnets: [10.1.0.0/16], group: pupil}
"""
POLICY = always_lesson_policy(HEAD + "reports: {block_list: local_blocks}\n", """\
lists:
  local_blocks: {domains: []}
rules:
  - {id: local-blocks, lists: [local_blocks], action: block, reason: The e-safety officer blocked this site after a report.}
""")  # fmt: skip
NO_BLOCK_LIST = always_lesson_policy(HEAD, "rules: []\n")


def make_app(tmp_path: Path, policy_text: str):  # type: ignore[no-untyped-def]
    url = seed(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    app.config.update(DB_URL=url)
    return app


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_app(tmp_path, POLICY)


def store(app):  # type: ignore[no-untyped-def]
    return session_factory(make_engine(app.config["DB_URL"]))()


def file_report(app, **fields) -> int:  # type: ignore[no-untyped-def]
    with store(app) as s:
        made = create_report(s, now=datetime.now(UTC), **({"kind": "person", "queue": "officer"} | fields))
        s.commit()
        return made.id


def flagged(app) -> Report:  # type: ignore[no-untyped-def]
    """The report the seeded log's flagged search made."""
    with store(app) as s:
        return s.scalars(select(Report).where(Report.kind == "flagged_site")).one()


def audited(app, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with store(app) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_the_officer_sees_the_flagged_visit_with_who_where_and_what(app) -> None:
    officer = signed_in(app, "officer")
    page = officer.get("/reports/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Amy Pupil (amy)" in html and "5B" in html and "ipad-07" in html and "www.google.co.uk" in html
    assert "how to bypass school filter" in html and "search-watch" in html
    assert audited(app, "reports_viewed")[-1].actor == "officer"
    report = flagged(app)
    detail = officer.get(f"/reports/{report.id}").get_data(as_text=True)
    # The person's other blocks and flags, from the log.
    assert "www.tiktok.com/@someone" in detail and "evil.example" in detail
    assert "the list <strong>local_blocks</strong>" in detail and "Block the site google.co.uk" in detail
    assert [e.target for e in audited(app, "report_viewed")] == [f"report:{report.id}"]
    assert 'href="/logs?person=amy"' in detail
    # Filters.
    assert "www.google.co.uk" not in officer.get("/reports/?kind=person").get_data(as_text=True)
    assert officer.get("/reports/?status=nonsense").status_code == 400


@pytest.mark.parametrize(("role", "queue", "head", "blocks"), [
    ("officer", 200, 403, 200), ("headteacher", 200, 200, 200), ("dpo", 200, 200, 403),
    ("teacher", 403, 403, 403), ("it", 403, 403, 403),
])  # fmt: skip
def test_who_may_see_the_queues(app, role, queue, head, blocks) -> None:
    client = signed_in(app, role)
    assert client.get("/reports/").status_code == queue
    assert client.get("/reports/head").status_code == head
    assert client.get("/reports/blocks").status_code == blocks
    assert client.get(f"/reports/{flagged(app).id}").status_code == queue
    nav = client.get("/help").get_data(as_text=True)
    assert ('href="/reports/"' in nav) == (queue == 200)


def test_signed_out_is_sent_to_sign_in(app) -> None:
    response = app.test_client().get("/reports/")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_what_a_page_or_a_pupil_wrote_is_shown_escaped(app) -> None:
    number = file_report(app, url=f"http://x.example/{HOSTILE}", host="x.example", details=HOSTILE,
                         category=HOSTILE, person={"display_name": HOSTILE})  # fmt: skip
    with store(app) as s:
        report = s.get(Report, number)
        report.excerpt, report.matches = HOSTILE, f'["{HOSTILE}"]'
        s.commit()
    officer = signed_in(app, "officer")
    for path in ("/reports/", f"/reports/{number}"):
        html = officer.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "&lt;script&gt;alert(" in html


def test_dismiss_needs_csrf_and_a_reason_and_happens_once(app) -> None:
    number = flagged(app).id
    officer = signed_in(app, "officer")
    assert officer.post(f"/reports/{number}/dismiss", data={"reason": "fine"}).status_code == 400
    assert post(officer, f"/reports/{number}/dismiss", reason=" ").status_code == 400
    assert post(signed_in(app, "teacher"), f"/reports/{number}/dismiss", reason="x").status_code == 403
    assert post(signed_in(app, "headteacher"), f"/reports/{number}/dismiss", reason="x").status_code == 403
    assert post(officer, f"/reports/{number}/dismiss", reason="a lesson on filters").status_code == 302
    assert post(officer, f"/reports/{number}/dismiss", reason="again").status_code == 409
    with store(app) as s:
        report = s.get(Report, number)
        assert (report.status, report.decided_by, report.decision_note) == ("dismissed", "officer",
                                                                            "a lesson on filters")  # fmt: skip
    assert [(e.actor, e.target) for e in audited(app, "report_dismissed")] == [("officer", f"report:{number}")]


def test_one_click_block_goes_to_the_store_and_can_be_lifted(app) -> None:
    number = file_report(app, url="https://www.Forum.example/t/9", host="www.forum.example")
    officer = signed_in(app, "officer")
    assert officer.post(f"/reports/{number}/block", data={"scope": "site"}).status_code == 400  # no CSRF token
    assert post(signed_in(app, "teacher"), f"/reports/{number}/block", scope="site").status_code == 403
    # The headteacher blocks from their own queue, not the officer's.
    assert post(signed_in(app, "headteacher"), f"/reports/{number}/block", scope="site").status_code == 403
    done = post(officer, f"/reports/{number}/block", scope="site", reason="")
    assert done.status_code == 302
    queue = officer.get("/reports/").get_data(as_text=True)
    assert "forum.example is blocked for the whole school (list local_blocks)" in queue
    with store(app) as s:
        assert entries_in_force(s) == (LocalEntry("forum.example"),)
        assert versions(s, [LOCAL_BLOCKS]) == {LOCAL_BLOCKS: 1}
        assert s.get(Report, number).status == "blocked"
    event = audited(app, "report_blocked")[-1]
    detail = json.loads(event.detail)
    assert (event.actor, detail["place"], detail["list"], detail["scope"]) == ("officer", "forum.example",
                                                                               "local_blocks", "site")  # fmt: skip
    assert post(officer, f"/reports/{number}/block", scope="site").status_code == 409
    page = officer.get("/reports/blocks").get_data(as_text=True)
    assert "forum.example (whole site)" in page and f"Blocked by the e-safety officer after report {number}." in page
    block_id = int(page.split('action="/reports/blocks/')[1].split("/")[0])
    assert post(officer, f"/reports/blocks/{block_id}/remove", reason="").status_code == 400
    assert post(officer, f"/reports/blocks/{block_id}/remove", reason="the forum was cleaned up").status_code == 302
    assert post(officer, f"/reports/blocks/{block_id}/remove", reason="twice").status_code == 409
    with store(app) as s:
        assert entries_in_force(s) == ()
        assert versions(s, [LOCAL_BLOCKS]) == {LOCAL_BLOCKS: 2}
    assert json.loads(audited(app, "local_block_removed")[-1].detail)["reason"] == "the forum was cleaned up"
    assert "lifted by officer" in officer.get("/reports/blocks").get_data(as_text=True)


def test_a_url_block_names_just_that_page(app) -> None:
    number = file_report(app, url="https://video.example/watch?v=abc", host="video.example")
    assert post(signed_in(app, "officer"), f"/reports/{number}/block", scope="url").status_code == 302
    with store(app) as s:
        assert entries_in_force(s) == (LocalEntry("video.example", "/watch?v=abc"),)


def test_escalated_and_contact_reports_go_to_the_headteacher(app) -> None:
    number = flagged(app).id
    officer, head = signed_in(app, "officer"), signed_in(app, "headteacher")
    assert post(officer, f"/reports/{number}/escalate", note="").status_code == 400
    assert post(officer, f"/reports/{number}/escalate", note="third time this week").status_code == 302
    contact = file_report(app, kind="contact", queue="headteacher", reporter="teacher", reporter_role="teacher",
                          service="Instagram", other_party="a parent", details="a friend request")  # fmt: skip
    queue = head.get("/reports/head").get_data(as_text=True)
    assert "www.google.co.uk" in queue and "Contact attempt" in queue and "a friend request" in queue
    # The officer does not read contact attempts about staff; nor decide in the headteacher's queue.
    assert officer.get(f"/reports/{contact}").status_code == 403
    assert post(officer, f"/reports/{contact}/close", note="x").status_code == 403
    assert "Instagram" in head.get(f"/reports/{contact}").get_data(as_text=True)
    assert post(head, f"/reports/{contact}/close", note="spoke to the parent").status_code == 302
    assert post(head, f"/reports/{number}/block", scope="site", reason="seen enough").status_code == 302
    with store(app) as s:
        assert [(r.id, r.status) for r in s.scalars(select(Report).where(Report.queue == "headteacher"))] == [
            (number, "blocked"), (contact, "closed")]
    assert [e.target for e in audited(app, "report_closed")] == [f"report:{contact}"]
    assert [e.target for e in audited(app, "report_escalated")] == [f"report:{number}"]


def test_without_a_block_list_the_console_says_why_and_blocks_nothing(tmp_path) -> None:
    app = make_app(tmp_path, NO_BLOCK_LIST)
    number = flagged(app).id
    officer = signed_in(app, "officer")
    assert "One-click blocks are off: the policy&#39;s `reports: block_list:` names no list" in officer.get(
        f"/reports/{number}").get_data(as_text=True)
    assert post(officer, f"/reports/{number}/block", scope="site").status_code == 400
    with store(app) as s:
        assert entries_in_force(s) == () and s.get(Report, number).status == "open"
