"""`gateway policy validate|reload`: check a policy file, and hand a checked one to running gateways."""

from __future__ import annotations

import os
from pathlib import Path

import click

from gateway.cli.options import db_option, record_or_warn
from gateway.policy.compiled import CompiledPolicy, compile_policy
from gateway.policy.expectations import check_expectations
from gateway.policy.illegal_slot import slot_warning
from gateway.policy.loader import LoadedPolicy, PolicyError, load_policy
from gateway.policy.shrink import confirm
from gateway.store.audit import sha256_of

DEFAULT_POLICY = "policies/default.yaml"


def exit_with(exc: PolicyError) -> SystemExit:
    """Every problem on stderr; the SystemExit (status 1) for the caller to raise."""
    for problem in exc.problems:
        click.echo(f"error: {problem}", err=True)
    return SystemExit(1)


def load_or_exit(path: Path) -> LoadedPolicy:
    """The policy file, or every problem in it on stderr and exit status 1."""
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise exit_with(exc) from None


def compile_or_exit(path: Path) -> CompiledPolicy:
    loaded = load_or_exit(path)
    try:
        return compile_policy(loaded)
    except PolicyError as exc:
        raise exit_with(exc) from None


def expectations_or_exit(compiled: CompiledPolicy) -> None:
    """Every expected decision the policy breaks on stderr, and exit status 1: running gateways would refuse it."""
    try:
        check_expectations(compiled)
    except PolicyError as exc:
        raise exit_with(exc) from None


def echo_warnings(compiled: CompiledPolicy) -> None:
    slot = slot_warning(compiled.policy, compiled.list_sizes)
    for warning in compiled.warnings:
        if warning != slot:
            click.echo(f"warning: {warning}", err=True)
    if slot is not None:
        # The one warning a school must not scroll past.
        rule = "!" * 78
        click.echo(f"{rule}\nwarning: {slot}\n{rule}", err=True)


@click.group()
def policy() -> None:
    """Check and reload the school's policy."""


@policy.command()
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_POLICY)
def validate(path: Path) -> None:
    """Report every error in a policy file, with file, line and field, and every expected decision it breaks."""
    compiled = compile_or_exit(path)
    expectations_or_exit(compiled)
    echo_warnings(compiled)
    click.echo(
        f"{path}: valid ({len(compiled.policy.rules)} rules, {len(compiled.policy.lists)} lists, "
        f"{len(compiled.domains):,} domain entries, {len(compiled.policy.expect)} expected decisions hold)"
    )


@policy.command()
@db_option
@click.option("--confirm-shrink", is_flag=True,
              help="Let running gateways load lists that are now empty or less than half their running size "
                   "(they refuse such a reload otherwise, in case a list file is damaged). Covers the list files "
                   "as they are now only.")  # fmt: skip
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_POLICY)
def reload(db_url: str, confirm_shrink: bool, path: Path) -> None:
    """Validate a policy file, then signal running gateways to load it.

    Gateways watch their policy file; this marks it changed once it has validated, and they swap it in
    within their reload interval (default 1 s). An invalid file is refused here and by the gateways, and so is a
    reload that empties a list or cuts it by more than half, unless --confirm-shrink is given.
    The reload is recorded in the audit trail of the database given by --db when there is one; each gateway
    also records what it loads, with the diff.
    """
    compiled = compile_or_exit(path)
    expectations_or_exit(compiled)
    echo_warnings(compiled)
    if confirm_shrink:
        click.echo(f"lists confirmed as they are now: {confirm(compiled)}")
    os.utime(path)
    click.echo(f"{path}: valid; running gateways load it within a few seconds")
    record_or_warn(db_url, "policy", {
        "command": "policy reload", "file": str(path.resolve()), "sha256": sha256_of(path),
        "summary": f"{len(compiled.policy.rules)} rules, {len(compiled.policy.lists)} lists, "
                   f"{len(compiled.policy.groups)} groups, {len(compiled.domains):,} domain entries",
        "confirm_shrink": confirm_shrink,
    })  # fmt: skip
