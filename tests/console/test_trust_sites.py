"""A trust's console: an account limited to one site never sees another site's records, however it asks (a forged
`site=`, another site's record ids in URLs, exports, the API with HTTP Basic), while a trust-wide account sees
every site. Real SQLite file, rows written by the access-log writer, accounts made by `gateway users`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.types import Identity
from gateway.store.access_rows import access_row
from gateway.store.accounts import create_user
from gateway.store.bans import ban_person
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.circumvention import Ban, Incident
from gateway.store.models.consent import UploadEvent
from gateway.store.models.people import PersonRecord
from gateway.store.reports import create_report
from gateway.store.unblock_requests import Asked, add_request
from gateway.store.writer import AccessLogWriter
from gateway.web.app import ConsoleConfig, create_app
from tests.support.console import PASSWORD, post, signed_in
from tests.support.policies import ROOT

AMY = Identity(group="pupils", client_ip="10.1.2.3", username="amy", display_name="Amy North", school_class="5B",
               year_group=5, device="ipad-north")  # fmt: skip
BEN = Identity(group="pupils", client_ip="10.2.2.3", username="ben", display_name="Ben South", school_class="6A",
               year_group=6, device="ipad-south")  # fmt: skip


def _records(url: str, now: datetime) -> dict[str, dict[str, int]]:
    """For each site: a report, an incident, a ban and an unblock request of its pupil; their ids."""
    ids: dict[str, dict[str, int]] = {}
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        for site, who in (("north", AMY), ("south", BEN)):
            person = {"username": who.username, "display_name": who.display_name, "group_name": who.group}
            report = create_report(s, kind="person", queue="officer", url=f"https://{site}-report.example/",
                                   host=f"{site}-report.example", now=now, person=person, site=site)  # fmt: skip
            incident = Incident(created_at=now, last_seen_at=now, hits=1, site=site, technique="doh",
                                detector="doh-content-type", confidence="high", host=f"{site}-doh.example",
                                status="open", notice_state="none", notice_attempts=0, person_key=f"user:{who.username}",
                                **person)  # fmt: skip
            s.add(incident)
            s.flush()
            ban = ban_person(s, username=who.username or "", display_name=who.display_name, reason=f"{site} ban",
                             created_by="head", now=now, site=site)  # fmt: skip
            request = add_request(s, Asked(
                username=who.username, display_name=who.display_name or "", client_ip=who.client_ip or "",
                group_name=who.group, school_class=who.school_class, year_group=who.year_group,
                url=f"https://{site}-games.example/", host=f"{site}-games.example", rule="games", list_name="games",
                reference=None, why=f"{site} homework", extent="page", audience="me", duration="lesson"),
                now, site=site)  # fmt: skip
            s.add(UploadEvent(row_id=f"up-{site}", at=now, site=site, username=who.username, method="POST",
                              host=f"{site}-upload.example", outcome="refused", refusal="personal_device"))  # fmt: skip
            ids[site] = {"report": report.id, "incident": incident.id, "ban": ban.id, "request": request.id}
        import_people(s, [Person("amy", "Amy North", "pupils", year_group=5, school_class="5B"),
                          Person("ben", "Ben South", "pupils", year_group=6, school_class="6A")])  # fmt: skip
        for person in s.query(PersonRecord):
            person.site = "north" if person.username == "amy" else "south"
    engine.dispose()
    return ids


@pytest.fixture
def trust(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'trust.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        for username, role, sites in (("north.officer", "officer", ("north",)), ("north.dpo", "dpo", ("north",)),
                                      ("south.head", "headteacher", ("south",)), ("trust.officer", "officer", ())):
            create_user(s, username, username.title(), role, PASSWORD, sites)
    engine.dispose()
    now = datetime.now(UTC)
    writer = AccessLogWriter(url, tmp_path / "spool").start()
    for n, (who, site, host) in enumerate(((AMY, "north", "north-only.example"), (BEN, "south", "south-only.example"),
                                           (BEN, "south", "shared.example"))):  # fmt: skip
        decision = Decision(Action.BLOCK, Source.RULE, "test", PeriodKind.LESSON, host, rule="games", list="games")
        writer.submit(access_row(identity=who, decision=decision, instant=now - timedelta(minutes=10 - n), method="GET",
                                 scheme="https", host=host, path="/", query="", status=403, size=100, keep_query=False,
                                 site=site))  # fmt: skip
    writer.close()
    ids = _records(url, now)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), timezone="Europe/London"))
    return app, ids


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def test_the_log_and_its_exports_show_only_the_accounts_site(trust):
    app, _ = trust
    north = signed_in(app, "north.officer")
    page = text(north.get("/logs"))
    assert "north-only.example" in page and "south-only.example" not in page
    # A forged site filter only narrows what the account may see.
    for forged in ("/logs?site=south", "/logs?site=south&person=ben", "/logs?domain=shared.example",
                   "/logs?allowed_sites=south", "/logs/person/ben"):  # fmt: skip
        page = text(north.get(forged))
        assert "south-only.example" not in page and "Ben South" not in page, forged
    exported = text(post(north, "/logs/export.csv", site="south", allowed_sites="south"))
    assert exported.count("\n") == 1 and "south" not in exported.split("\n", 1)[1]
    exported = text(post(north, "/logs/export.csv"))
    assert "north-only.example" in exported and "south-only.example" not in exported
    trust_wide = signed_in(app, "trust.officer")
    page = text(trust_wide.get("/logs"))
    assert "north-only.example" in page and "south-only.example" in page
    assert "south-only.example" in text(trust_wide.get("/logs?site=south"))
    assert "north-only.example" not in text(trust_wide.get("/logs?site=south"))


def test_the_dashboard_counts_only_the_accounts_sites(trust):
    app, _ = trust
    north = signed_in(app, "north.officer")
    for query in ("", "?site=south"):
        figures = json.loads(text(north.get(f"/api/v1/dashboard{query}")))
        domains = {d["domain"] for d in figures["top_blocked_domains"]}
        assert "south-only.example" not in domains and "shared.example" not in domains
    figures = json.loads(text(north.get("/api/v1/dashboard")))
    assert {d["domain"] for d in figures["top_blocked_domains"]} == {"north-only.example"}
    assert "south-only.example" not in text(north.get("/dashboard?site=south"))


def test_the_api_with_http_basic_is_limited_like_the_pages(trust):
    app, _ = trust
    client = app.test_client()
    basic = {"Authorization": "Basic " + base64.b64encode(f"north.officer:{PASSWORD}".encode()).decode()}
    rows = json.loads(text(client.get("/api/v1/log", headers=basic)))["rows"]
    assert {r["site"] for r in rows} == {"north"}
    assert json.loads(text(client.get("/api/v1/log?site=south", headers=basic)))["rows"] == []
    assert json.loads(text(client.get("/api/v1/people/ben/timeline", headers=basic)))["rows"] == []
    basic["Authorization"] = "Basic " + base64.b64encode(f"north.dpo:{PASSWORD}".encode()).decode()
    exported = json.loads(text(client.get("/api/v1/people/ben/export?format=json", headers=basic)))
    assert exported["access_log"] == []
    assert json.loads(text(client.get("/api/v1/people/amy/export?format=json", headers=basic)))["access_log"]


def test_another_sites_records_are_not_found_by_id(trust):
    app, ids = trust
    north = signed_in(app, "north.officer")
    south = ids["south"]
    assert north.get(f"/reports/{south['report']}").status_code == 404
    assert north.get(f"/incidents/{south['incident']}").status_code == 404
    assert north.get(f"/unblock/{south['request']}").status_code == 404
    assert north.get(f"/reports/{ids['north']['report']}").status_code == 200
    assert north.get(f"/incidents/{ids['north']['incident']}").status_code == 200
    # Acting on another site's records is refused the same way, and changes nothing.
    assert post(north, f"/reports/{south['report']}/dismiss", reason="not mine").status_code == 404
    head = signed_in(app, "south.head")
    assert post(head, f"/incidents/{ids['north']['incident']}/dismiss", note="not mine").status_code == 404
    assert post(head, f"/incidents/{ids['north']['incident']}/confirm", note="not mine").status_code == 404
    assert post(head, f"/bans/{ids['north']['ban']}/lift", note="not mine").status_code == 404
    engine = make_engine(app.config["GATEWAY"].db_url)
    with Session(engine) as s:
        assert s.get(Ban, ids["north"]["ban"]).lifted_at is None  # type: ignore[union-attr]
        assert s.get(Incident, ids["north"]["incident"]).status == "open"  # type: ignore[union-attr]
    engine.dispose()


def test_lists_show_only_the_accounts_site(trust):
    app, _ = trust
    north = signed_in(app, "north.officer")
    for path, north_mark, south_mark in (
        ("/reports/", "north-report.example", "south-report.example"),
        ("/reports/?site=south", None, "south-report.example"),
        ("/incidents/?status=all", "north-doh.example", "south-doh.example"),
        ("/incidents/?status=all&site=south", None, "south-doh.example"),
        ("/unblock/", "north-games.example", "south-games.example"),
        ("/bans/", "Amy North", "Ben South"),
        ("/bans/?site=south", None, "Ben South"),
    ):  # fmt: skip
        page = text(north.get(path))
        assert south_mark not in page, path
        if north_mark:
            assert north_mark in page, path
    dpo = signed_in(app, "north.dpo")
    assert "north-upload.example" in text(dpo.get("/uploads/")) and "south-upload.example" not in text(dpo.get("/uploads/"))
    register = text(dpo.get("/consent/"))
    assert "Amy North" in register and "Ben South" not in register
    assert dpo.get("/consent/pupil/ben").status_code == 404
    refused = post(dpo, "/consent/pupil/ben", change="recorded", images="yes", channels="website",
                   effective_on=datetime.now(UTC).date().isoformat(), source="forged form")  # fmt: skip
    assert refused.status_code == 400 and "not a pupil on the roster" in text(refused)
    assert "Ben South" not in text(post(dpo, "/consent/export.csv"))
    # Asking for another site's list by name is a 404, whichever name it is.
    for path in ("/uploads/?site=south", "/uploads/?site=nowhere", "/consent/?site=south"):
        assert dpo.get(path).status_code == 404, path
    assert north.get("/unblock/?site=south").status_code == 404
    assert "north-upload.example" in text(dpo.get("/uploads/?site=north&outcome=refused"))
    trust_wide = signed_in(app, "trust.officer")
    page = text(trust_wide.get("/incidents/?status=all"))
    assert "north-doh.example" in page and "south-doh.example" in page
    page = text(trust_wide.get("/unblock/?site=south"))
    assert "south-games.example" in page and "north-games.example" not in page
    assert 'list="site-choices"' in page and '<option value="north">' in page


def test_the_audit_trail_shows_only_what_was_done_at_the_accounts_site(trust):
    app, _ = trust
    signed_in(app, "south.head").get("/logs?person=ben")
    signed_in(app, "north.officer").get("/logs?person=amy")
    page = text(signed_in(app, "north.dpo").get("/audit"))
    assert "north.officer" in page and "amy" in page
    assert "south.head" not in page and "ben" not in page
    page = text(signed_in(app, "south.head").get("/audit"))
    assert "south.head" in page and "north.officer" not in page


def test_users_add_site_and_users_sites_set_what_an_account_sees(trust):
    app, _ = trust
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    url = app.config["GATEWAY"].db_url

    def gateway(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", "users", *args, "--db", url], capture_output=True,
                              text=True, env=env, timeout=120)  # fmt: skip

    done = gateway("add", "south.officer", "--role", "officer", "--password", PASSWORD, "--site", "south")
    assert done.returncode == 0 and "sites: south" in done.stdout, done.stderr
    page = text(signed_in(app, "south.officer").get("/logs"))
    assert "south-only.example" in page and "north-only.example" not in page
    done = gateway("sites", "south.officer", "--site", "north")
    assert done.returncode == 0 and "sees: north" in done.stdout, done.stderr
    page = text(signed_in(app, "south.officer").get("/logs"))
    assert "north-only.example" in page and "south-only.example" not in page
    refused = gateway("sites", "south.officer", "--site", "a b;c")
    assert refused.returncode != 0 and "not a site name" in refused.stderr
