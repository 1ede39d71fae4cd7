"""`gateway devices`: the register of school-owned and personal devices."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from gateway.cli.identity_common import finish_import, load_policy, open_store, policy_option
from gateway.cli.options import db_option
from gateway.cli.roster_cmd import report_csv_error
from gateway.identity.csv_table import CsvImportError
from gateway.identity.devices_csv import parse_devices
from gateway.identity.directory import import_devices
from gateway.store.device_approval import devices as devices_in_register
from gateway.store.models.people import PersonRecord


@click.group()
def devices() -> None:
    """School-owned and personal (BYOD) devices, found by their MAC address in the DHCP leases."""


@devices.command("import")
@db_option
@policy_option
@click.option("--dry-run", is_flag=True, help="Check the file and say what would change, change nothing.")
@click.option("--site", help="In a trust's shared store: the file is this school's register only, so only this "
              "school's devices can be retired (default: the file is the whole register).")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_cmd(db_url: str, policy_path: Path, dry_run: bool, site: str | None, path: Path) -> None:
    """Import the device register from CSV.

    Columns: name and MAC address are required; kind, ownership (school or personal), assigned to (a
    username), class, trolley and group are read when present. Devices missing from the file are retired. A
    device the headteacher approved for pictures loses the approval if it becomes personal or its MAC changes.
    Every device imported belongs to --site, or to the policy's school.site.
    """
    policy = load_policy(policy_path)
    with open_store(db_url) as store, store() as session:
        usernames = set(session.scalars(select(PersonRecord.username).where(PersonRecord.active)))
        try:
            parsed = parse_devices(path, known_usernames=usernames, known_groups=set(policy.groups))
        except CsvImportError as exc:
            report_csv_error(exc)
        summary = import_devices(session, parsed, site=site or policy.school.site, only_site=site is not None)
        finish_import(session, summary, path=path, rows=len(parsed), noun="devices", target="devices",
                      dry_run=dry_run)  # fmt: skip


@devices.command("list")
@db_option
def list_cmd(db_url: str) -> None:
    """The register's devices: ownership (school or personal) and the headteacher's approval for pictures."""
    with open_store(db_url) as store, store() as session:
        for device in devices_in_register(session):
            owner = "personal" if device.personal else "school"
            if device.approved_at is not None:
                approval = f"approved by {device.approved_by} {device.approved_at:%Y-%m-%d}"
            else:
                approval = "never (personal)" if device.personal else "not approved"
            assigned = device.username or device.school_class or device.trolley or "-"
            click.echo(f"{device.name}\t{device.mac or '-'}\t{owner}\t{assigned}\tpictures: {approval}")
