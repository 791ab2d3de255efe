"""`appliance journal`: prove the fiscal journal's hash chain, and export it for an auditor."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.cli.existing_db import existing_database
from appliance.cli.options import config_options, settings_for
from appliance.store.journal import FiscalJournal, JournalCheck

EXIT_BROKEN = 1  # the chain does not hold: an auditor's script must see it


@click.group()
def journal() -> None:
    """The fiscal journal: sales, refunds, voids, payment steps, drawer, shifts and reports."""


@journal.command("verify")
@config_options
def verify_command(simulate: bool, config_path: str | None) -> None:
    """Prove the chain and every document in it; name the first bad entry (exit 1)."""
    with existing_database(settings_for(config_path, simulate)) as database:
        check = FiscalJournal(database).verify()
    _report(check)
    if not check.ok:
        sys.exit(EXIT_BROKEN)


@journal.command("export")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON lines to FILE (default: stdout).",
)
@config_options
def export_command(output: Path | None, simulate: bool, config_path: str | None) -> None:
    """Write every entry as a JSON line, then a last line with the chain's head hash."""
    with existing_database(settings_for(config_path, simulate)) as database:
        journal_ = FiscalJournal(database)
        check = journal_.export_to(output) if output else journal_.export(sys.stdout)
    if output:
        _report(check)
    if not check.ok:
        sys.exit(EXIT_BROKEN)


def _report(check: JournalCheck) -> None:
    """One line on stderr-free stdout: what the chain holds, and whether it holds."""
    held = f"{check.entries} entries, head {check.head_number} {check.head_hash or '-'}"
    if check.problem is None:
        click.echo(f"journal verified: {held}")
        return
    click.secho(
        f"journal BROKEN at entry {check.problem.number}: {check.problem.reason} ({held})",
        fg="red",
        err=True,
    )
