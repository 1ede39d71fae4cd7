"""`gateway consent`: the image-consent register from the command line, for a school moving from a spreadsheet."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from gateway.cli.identity_common import load_policy, open_store, policy_option
from gateway.cli.options import db_option
from gateway.cli.roster_cmd import report_csv_error
from gateway.identity.csv_table import CsvImportError, RowProblem, header_key, read_rows
from gateway.store.audit import cli_actor, record, sha256_of
from gateway.store.consent import CHANNELS, ConsentRefused, audit_change, record_consent, school_day

_ALIASES = {
    header_key(h): field
    for field, headings in {
        "username": ["username", "pupil", "user"],
        "images": ["images", "photos", "image consent", "photo consent"],
        "video": ["video", "videos", "video consent"],
        "channels": ["channels", "where", "channel"],
        "date": ["date", "date signed", "effective", "effective on"],
        "source": ["source", "written source", "evidence"],
        "change": ["change", "kind"],
    }.items()
    for h in headings
}
_YES = {"yes", "y", "true", "1", "x"}
_NO = {"no", "n", "false", "0", ""}


@click.group()
def consent() -> None:
    """The image-consent register (images and videos on the school's accounts, per academic year)."""


def _flag(value: str, column: str) -> bool:
    text = value.strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(f"{column} {value!r} is not yes or no")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"date {value!r} is not YYYY-MM-DD") from None


def _channels(value: str) -> list[str]:
    if not value.strip():
        return list(CHANNELS)
    names = [header_key(v).replace("socialmedia", "social_media") for v in value.replace(";", ",").split(",")]
    return [n for n in names if n]


@consent.command("import")
@db_option
@policy_option
@click.option("--dry-run", is_flag=True, help="Check the file and say what it holds, change nothing.")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_cmd(db_url: str, policy_path: Path, dry_run: bool, path: Path) -> None:
    """Add consent records from CSV: one row a change, each kept in the history.

    Columns: username, date (YYYY-MM-DD, the written source's date) and source are required; images and video
    (yes/no), channels (website, social media, newsletter, separated by ; or ,; empty: all three) and change
    (recorded, amended or withdrawn; empty: recorded) are read when present. A row's academic year is its date's.
    Every problem is reported with its line; nothing is imported unless every row is good.
    """
    zone = ZoneInfo(load_policy(policy_path).school.timezone)
    now = datetime.now(UTC)
    today = school_day(now, zone)
    actor = cli_actor()
    with open_store(db_url) as store, store() as session:
        problems: list[RowProblem] = []
        rows = 0
        try:
            for line, row in read_rows(path, _ALIASES, {"username", "date", "source"}):
                rows += 1
                try:
                    added = record_consent(
                        session, username=row["username"], change=row.get("change", "").lower() or "recorded",
                        images=_flag(row.get("images", ""), "images"), video=_flag(row.get("video", ""), "video"),
                        channels=_channels(row.get("channels", "")), effective_on=_day(row["date"]),
                        source=row["source"], by=actor, now=now, today=today,
                    )  # fmt: skip
                except (ConsentRefused, ValueError) as exc:
                    problems.append(RowProblem(line, str(exc)))
                    continue
                audit_change(session, added, by=actor, role=None, client_ip=None)
        except CsvImportError as exc:
            session.rollback()
            report_csv_error(exc)
        if problems:
            session.rollback()
            report_csv_error(CsvImportError(str(path), problems))
        if dry_run:
            session.rollback()
            click.echo(f"{path}: {rows} consent changes; none imported (dry run)")
            return
        record(session, actor, "change", target="consent",
               detail={"command": "consent import", "file": str(path.resolve()), "sha256": sha256_of(path),
                       "rows": rows})  # fmt: skip
        session.commit()
        click.echo(f"{path}: {rows} consent changes imported")
