"""`appliance catalog`: import a store's CSV export."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from appliance.cli.options import config_options, settings_for
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.migrations import migrate

MAX_ERRORS_SHOWN = 50


@click.group()
def catalog() -> None:
    """Manage the local catalog."""


@catalog.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-bad-rows", is_flag=True, help="Import the good rows even if some are bad.")
@config_options
def import_command(
    csv_file: Path, skip_bad_rows: bool, simulate: bool, config_path: str | None
) -> None:
    """Import products from CSV: all rows or none; bad rows are listed by line number."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from appliance.catalog_import import BadRowsError, import_catalog_csv

    settings = settings_for(config_path, simulate)
    path = Path(settings.database.path)
    database = open_database(path)
    try:
        migrate(database, backup_dir=path.parent / "backups")
        # The bar goes to stderr and only to a terminal: stdout carries the summary for scripts.
        console = Console(stderr=True)
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as bar:
            task = bar.add_task("import", total=None)
            try:
                report = import_catalog_csv(
                    SqliteCatalog(database),
                    csv_file,
                    settings.store,
                    skip_bad_rows=skip_bad_rows,
                    progress=lambda done: bar.update(task, completed=done),
                )
            except BadRowsError as err:
                bar.stop()
                _show_errors(err.errors)
                raise
    finally:
        database.close()
    _show_errors(report.errors)
    skipped = f", skipped {len(report.errors)} bad row(s)" if report.errors else ""
    click.echo(f"imported {report.imported} of {report.rows} product(s){skipped}")


def _show_errors(errors: Sequence[object]) -> None:
    for error in errors[:MAX_ERRORS_SHOWN]:
        click.echo(str(error), err=True)
    if len(errors) > MAX_ERRORS_SHOWN:
        click.echo(f"... and {len(errors) - MAX_ERRORS_SHOWN} more", err=True)
