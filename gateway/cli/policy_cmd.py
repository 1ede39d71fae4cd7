"""`gateway policy validate|reload`: check a policy file, and hand a checked one to running gateways."""

from __future__ import annotations

import os
from pathlib import Path

import click

from gateway.cli.options import db_option, record_or_warn
from gateway.policy.compiled import CompiledPolicy, compile_policy
from gateway.policy.loader import LoadedPolicy, PolicyError, load_policy
from gateway.store.audit import sha256_of

DEFAULT_POLICY = "policies/default.yaml"


def load_or_exit(path: Path) -> LoadedPolicy:
    """The policy file, or every problem in it on stderr and exit status 1."""
    try:
        return load_policy(path)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(1) from None


def compile_or_exit(path: Path) -> CompiledPolicy:
    return compile_policy(load_or_exit(path))


@click.group()
def policy() -> None:
    """Check and reload the school's policy."""


@policy.command()
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_POLICY)
def validate(path: Path) -> None:
    """Report every error in a policy file, with file, line and field."""
    compiled = compile_or_exit(path)
    for warning in compiled.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{path}: valid ({len(compiled.policy.rules)} rules, {len(compiled.policy.lists)} lists, "
        f"{len(compiled.domains):,} domain entries)"
    )


@policy.command()
@db_option
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_POLICY)
def reload(db_url: str, path: Path) -> None:
    """Validate a policy file, then signal running gateways to load it.

    Gateways watch their policy file; this marks it changed once it has validated, and they swap it in
    within their reload interval (default 1 s). An invalid file is refused here and by the gateways.
    The reload is recorded in the audit trail of the database given by --db when there is one; each gateway
    also records what it loads, with the diff.
    """
    compiled = compile_or_exit(path)
    os.utime(path)
    click.echo(f"{path}: valid; running gateways load it within a few seconds")
    record_or_warn(db_url, "policy", {
        "command": "policy reload", "file": str(path.resolve()), "sha256": sha256_of(path),
        "summary": f"{len(compiled.policy.rules)} rules, {len(compiled.policy.lists)} lists, "
                   f"{len(compiled.policy.groups)} groups, {len(compiled.domains):,} domain entries",
    })  # fmt: skip
