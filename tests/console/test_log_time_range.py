"""The access log searches the last 30 days unless asked otherwise, on SQLite and on PostgreSQL (where the log is
partitioned by day and a search is read a few days at a time): what an officer sees by default, an older row found
once the range is widened or all time is asked for, the range stated on the page and kept by the export, bad dates
refused with a message, every page in order across the days, and an account still limited to its sites."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.store import partitions
from gateway.store.access_rows import access_row
from gateway.store.accounts import create_user
from gateway.store.engine import make_engine
from gateway.store.writer import AccessLogWriter
from gateway.web import log_queries
from gateway.web.app import ConsoleConfig, create_app
from gateway.web.log_queries import LogFilter
from tests.store.databases import db_url, pg_schema_url  # noqa: F401  (fixtures)
from tests.support.console import PASSWORD, csrf, signed_in

LONDON = ZoneInfo("Europe/London")
AMY = Identity(group="pupils", client_ip="10.1.2.3", username="amy", display_name="Amy North")
BEN = Identity(group="pupils", client_ip="10.2.2.3", username="ben", display_name="Ben South")
NOW = datetime.now(UTC)
TODAY = NOW.astimezone(LONDON).date()


def noon(days_ago: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(12), LONDON)


def row(who: Identity, at: datetime, host: str, site: str) -> dict:
    decision = Decision(Action.BLOCK, Source.RULE, "test", PeriodKind.LESSON, host, rule="games", list="games")
    return access_row(identity=who, decision=decision, instant=at, method="GET", scheme="https", host=host, path="/",
                      query="", status=403, size=100, keep_query=False, site=site)  # fmt: skip


def write(url: str, spool: Path, rows: list[dict]) -> None:
    writer = AccessLogWriter(url, spool, interval=0.05).start()
    for r in rows:
        writer.submit(r)
    writer.close()
    assert writer.written == len(rows)


def make_days(url: str, days: list[date]) -> None:
    """On PostgreSQL, the days' partitions (others' rows stay in the default partition, as a rehearsal's would)."""
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            for day in days:
                partitions.ensure_day(connection, day)
    engine.dispose()


@pytest.fixture
def console(db_url, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        create_user(s, "north.officer", "North Officer", "officer", PASSWORD, ("north",))
    engine.dispose()
    make_days(db_url, [noon(20).astimezone(UTC).date()])
    write(db_url, tmp_path / "spool", [
        row(AMY, NOW - timedelta(minutes=5), "today.example", "north"),
        row(AMY, noon(20), "this-month.example", "north"),
        row(AMY, noon(45), "older.example", "north"),
        row(AMY, noon(400), "last-year.example", "north"),
        row(BEN, NOW - timedelta(minutes=4), "south-today.example", "south"),
        row(BEN, noon(45), "south-older.example", "south"),
    ])  # fmt: skip
    app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=str(tmp_path / "secret"), timezone="Europe/London"))
    return signed_in(app, "north.officer")


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def hosts(page: str) -> set[str]:
    return set(re.findall(r"https://([a-z.-]+\.example)/", page))


def export(client, page: str) -> str:  # type: ignore[no-untyped-def]
    """Press the page's export button: post its hidden fields as the browser would."""
    form = page[page.index('action="/logs/export.csv"') :].split("</form>")[0]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    response = client.post("/logs/export.csv", data={**fields, "csrf_token": csrf(form)})
    assert response.status_code == 200
    return text(response)


def test_the_log_shows_the_last_30_days_and_says_so(console):
    page = text(console.get("/logs"))
    assert hosts(page) == {"today.example", "this-month.example"}
    since = (TODAY - timedelta(days=29)).isoformat()
    assert f'name="since" value="{since}T00:00"' in page, "the range is in the form, to change"
    stated = f"from {datetime.fromisoformat(since):%d %b %Y} 00:00 to now"
    assert f"Requests {stated}" in page and f"Export these rows, {stated} (CSV)" in page
    exported = export(console, page)
    assert "this-month.example" in exported and "older.example" not in exported


def test_a_wider_range_or_all_time_finds_older_rows(console):
    since = (TODAY - timedelta(days=60)).isoformat() + "T00:00"
    page = text(console.get(f"/logs?since={since}"))
    assert hosts(page) == {"today.example", "this-month.example", "older.example"}
    assert "older.example" in export(console, page)
    until = (TODAY - timedelta(days=30)).isoformat() + "T00:00"
    assert hosts(text(console.get(f"/logs?since={since}&until={until}"))) == {"older.example"}
    assert hosts(text(console.get(f"/logs?until={until}"))) == {"older.example", "last-year.example"}
    default = text(console.get("/logs"))
    link = re.search(r'<a href="([^"]+)" id="all-time">Search all time \(slower\)</a>', default)
    assert link, "the default range offers all time"
    everything = text(console.get(link[1].replace("&amp;", "&")))
    assert hosts(everything) == {"today.example", "this-month.example", "older.example", "last-year.example"}
    assert "Requests all time." in everything and 'name="all_time" value="1" checked' in everything
    assert 'name="since" value=""' in everything
    assert "last-year.example" in export(console, everything)
    # All time wins over a From still in the form when the box is ticked.
    assert "last-year.example" in hosts(text(console.get(f"/logs?since={since}&all_time=1")))


def test_the_range_keeps_to_the_accounts_sites(console):
    for query in ("", "?all_time=1", "?site=south&all_time=1", "?domain=south-older.example&all_time=1",
                  "?person=ben&since=2000-01-01T00:00"):  # fmt: skip
        page = text(console.get(f"/logs{query}"))
        assert not {"south-today.example", "south-older.example"} & hosts(page), query
        assert "south" not in export(console, page).split("\n", 1)[1], query


@pytest.mark.parametrize("query", ["since=<script>alert(1)</script>", "until=2026-02-30T09:00",
                                   "since=last%20month", "all_time=<b>yes</b>"])  # fmt: skip
def test_a_bad_date_is_refused_with_a_message(console, query: str):
    response = console.get(f"/logs?{query}")
    body = text(response)
    assert response.status_code == 400 and "Not understood" in body
    assert query.split("=")[0] in body
    assert "<script>alert" not in body and "<b>yes" not in body


def test_pages_run_in_order_across_days_and_partitions(db_url, tmp_path):  # noqa: F811
    """Rows over 200 days, some in day partitions and some in the default one, read two at a time: every page in
    order, none missed or repeated, whichever way sorted, whatever the range."""
    days = [0, 0, 1, 3, 3, 3, 6, 9, 20, 29, 30, 31, 64, 65, 100, 150, 199]
    make_days(db_url, [noon(n).astimezone(UTC).date() for n in days[::2]])
    rows = [row(AMY, noon(n) - timedelta(minutes=i), f"h{i}.example", "north") for i, n in enumerate(days)]
    rows += [row(BEN, noon(n) - timedelta(minutes=i), f"b{i}.example", "south") for i, n in enumerate(days)]
    write(db_url, tmp_path / "spool", rows)
    engine = make_engine(db_url)
    ranges = [{"all_time": "1"}, {}, {"since": f"{TODAY - timedelta(days=100)}T12:00"},
              {"until": f"{TODAY - timedelta(days=9)}T00:00"}]  # fmt: skip
    with Session(engine) as session:
        for args in ranges:
            for sort in ("newest", "oldest"):
                log_filter = LogFilter.from_args({**args, "site": "north", "sort": sort}, LONDON)
                since, until = log_filter.time_range(LONDON)
                expected = sorted((r["at"] for r in rows if r["site"] == "north" and (not since or r["at"] >= since)
                                   and (not until or r["at"] < until)), reverse=sort == "newest")  # fmt: skip
                seen: list[datetime] = []
                for number in range(1, len(days)):
                    found, more = log_queries.page(session, replace(log_filter, page=number), LONDON, size=2)
                    seen += [r.at for r in found]
                    if not more:
                        break
                assert [s.astimezone(UTC) for s in seen] == expected, (args, sort)
    engine.dispose()
