"""`appliance-hub drawer DEVICE`: a device's cash drawer log, as its journal brought it."""

from __future__ import annotations

import json
from typing import Any

import click
from peewee import Database
from rich.console import Console
from rich.table import Table

from hub.cli_options import db_option, open_db
from hub.ingest import utc_text
from hub.models import DrawerOpening


def openings_of(device: str, *, without_sale: bool = False) -> Any:
    """The query of a device's openings (only those no sale explains, if asked)."""
    query = DrawerOpening.select().where(DrawerOpening.device == device)
    return query.where(DrawerOpening.reason != "sale") if without_sale else query


def drawer_log(
    db: Database, device: str, *, without_sale: bool = False, limit: int | None = None
) -> list[dict[str, Any]]:
    """A device's drawer openings, newest first (only those without a sale, if asked)."""
    query = (
        openings_of(device, without_sale=without_sale)
        .select(
            DrawerOpening.journal_number,
            DrawerOpening.opened_at,
            DrawerOpening.reason,
            DrawerOpening.staff,
            DrawerOpening.reference,
            DrawerOpening.unexplained,
        )
        .order_by(DrawerOpening.opened_at.desc(), DrawerOpening.journal_number.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "journal_number": int(number),
            "opened_at": utc_text(at),
            "reason": str(reason),
            "staff": str(staff),
            "reference": str(reference),
            "unexplained": bool(unexplained),
        }
        for number, at, reason, staff, reference, unexplained in query.tuples().execute(db)
    ]


@click.command("drawer")
@click.argument("device")
@click.option("--without-sale", is_flag=True, help="Only openings no sale explains.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
@db_option
def drawer_command(device: str, without_sale: bool, as_json: bool, db_url: str) -> None:
    """DEVICE's cash drawer openings with their cause, newest first."""
    db = open_db(db_url)
    try:
        openings = drawer_log(db, device, without_sale=without_sale)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(openings, indent=2))
        return
    table = Table("opened (UTC)", "cause", "staff", "reference", "flag")
    for o in openings:
        flag = "unexplained" if o["unexplained"] else ""
        table.add_row(o["opened_at"], o["reason"], o["staff"], o["reference"], flag)
    console = Console()
    console.print(table)
    console.print(f"{len(openings)} opening(s)")
