"""`gateway lists`: import the UT1 blocklists and report what a list folder holds."""

from __future__ import annotations

import time
from pathlib import Path

import click

from gateway.cli.options import db_option, record_or_warn
from gateway.lists.cache import fresh_meta
from gateway.lists.files import read_domain_file, read_url_file
from gateway.lists.ut1 import Ut1ImportError, import_ut1

DEFAULT_UT1_DIR = Path("var/lists/ut1")
# Bad lines printed per import; all are counted.
SHOWN_BAD_LINES = 20


class ListsError(click.ClickException):
    # Bad input, like click's own usage errors.
    exit_code = 2


@click.group()
def lists() -> None:
    """Blocklists: import UT1 categories, show list statistics."""


@lists.command("import")
@click.argument("source", metavar="PATH_OR_URL")
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_UT1_DIR,
    show_default=True,
    help="Folder the categories are written to, one subfolder each.",
)
@click.option("--category", "categories", multiple=True, metavar="NAME", help="Import only this category (repeatable).")
@db_option
def import_command(source: str, into: Path, categories: tuple[str, ...], db_url: str) -> None:
    """Import UT1 categories from a folder, a .tar.gz or an http(s) URL of one.

    The import is recorded in the audit trail of the database given by --db; when there is none (lists
    prepared on a laptop) it says so and the import stands.
    """
    started = time.perf_counter()
    try:
        report = import_ut1(source, into, categories or None)
    except Ut1ImportError as exc:
        raise ListsError(str(exc)) from exc
    except OSError as exc:
        raise ListsError(f"could not write {into}: {exc.strerror or exc}") from exc
    for category in report.categories.values():
        click.echo(
            f"{category.name:<28} {category.domains:>9} domains {category.urls:>7} urls"
            + (f" {category.bad_count:>5} bad lines" if category.bad_count else "")
        )
    shown = [bad for category in report.categories.values() for bad in category.bad][:SHOWN_BAD_LINES]
    for bad in shown:
        click.echo(f"bad line: {bad}", err=True)
    if report.bad_count > len(shown):
        click.echo(f"... and {report.bad_count - len(shown)} more bad lines", err=True)
    for note in report.skipped:
        click.echo(f"skipped: {note}", err=True)
    click.echo(
        f"imported {len(report.categories)} categories: {report.domains} domains, {report.urls} urls, "
        f"{report.bad_count} bad lines skipped, into {into} in {time.perf_counter() - started:.1f} s"
    )
    record_or_warn(db_url, f"lists:{into}", {
        "command": "lists import", "source": source, "into": str(into.resolve()),
        "categories": {c.name: {"domains": c.domains, "urls": c.urls, "bad_lines": c.bad_count}
                       for c in report.categories.values()},
        "domains": report.domains, "urls": report.urls, "bad_lines": report.bad_count,
    })  # fmt: skip


@lists.command("stats")
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
def stats_command(directory: Path) -> None:
    """Entries per category (UT1 folders) and per plain list file (*.txt) in DIR."""
    if not directory.is_dir():
        raise ListsError(f"no such directory: {directory}")
    rows = []
    for child in sorted(directory.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir() and not child.is_symlink():
            domains = child / "domains"
            urls = child / "urls"
            if domains.is_file() or urls.is_file():
                rows.append((child.name, _domain_count(domains), _url_count(urls)))
        elif child.is_file() and child.suffix == ".txt":
            rows.append((child.name, _domain_count(child), 0))
    if not rows:
        raise ListsError(f"{directory} holds no lists (no category folders and no .txt list files)")
    for name, domains, urls in rows:
        click.echo(f"{name:<28} {domains:>9} domains {urls:>7} urls")
    click.echo(f"{len(rows)} lists: {sum(r[1] for r in rows)} domains, {sum(r[2] for r in rows)} urls")


def _domain_count(path: Path) -> int:
    if not path.is_file():
        return 0
    meta = fresh_meta(path)
    if meta is not None:
        return int(meta["entries"])
    return len(read_domain_file(path).entries)


def _url_count(path: Path) -> int:
    return len(read_url_file(path).entries) if path.is_file() else 0
