"""`appliance-hub sales export`: every stored sale as CSV; `sales rejected`: those refused."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import click
from peewee import Database
from rich.console import Console
from rich.table import Table

from appliance.core.money import Money
from appliance.errors import StoreError
from hub.cli_options import db_option, open_db
from hub.migrations import open_existing
from hub.models import Sale
from hub.rejections import rejections

COLUMNS = (
    "device",
    "seq",
    "sale_id",
    "kind",
    "created_at",
    "currency",
    "total",
    "clock_verified",  # false: stamped before the device's clock was verified
)


@click.group("sales")
def sales() -> None:
    """Sales the hub has stored."""


@sales.command("export")
@click.option(
    "--since",
    default="1970-01-01",
    metavar="DATE",
    help="Only documents made from this ISO date or time on (UTC when no zone is given;"
    " default: all).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CSV to FILE (default: stdout).",
)
@db_option
def export_command(since: str, output: Path | None, db_url: str) -> None:
    """One CSV row per document, oldest first; totals in major units of their currency."""
    moment = parse_since(since)
    try:
        db = open_existing(db_url)
    except StoreError as err:
        raise click.ClickException(str(err)) from err
    try:
        with (
            output.open("w", newline="", encoding="utf-8")
            if output
            else nullcontext(sys.stdout) as handle
        ):
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(export_rows(db, moment))
    finally:
        db.close()


@sales.command("rejected")
@click.option("--device", metavar="DEVICE", help="Only this device's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
@db_option
def rejected_command(device: str | None, as_json: bool, db_url: str) -> None:
    """Sales the hub would not count (unreadable, or in conflict), kept as sent.

    Each one is held in quarantine on its device too; the reason says what the hub holds.
    """
    db = open_db(db_url)
    try:
        found = rejections(db, device)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([asdict(r) for r in found], indent=2))
        return
    table = Table("device", "seq", "sale id", "code", "reason", "received (UTC)")
    for r in found:
        table.add_row(r.device, str(r.seq), r.sale_id, r.code, r.reason, r.received_at)
    console = Console()
    console.print(table)
    console.print(f"{len(found)} rejected sale(s)")


def export_rows(db: Database, since: datetime) -> Iterator[list[object]]:
    """CSV rows of every document created at or after `since`, by time then device order."""
    query = (
        Sale.select(
            Sale.device,
            Sale.seq,
            Sale.sale_id,
            Sale.kind,
            Sale.created_at,
            Sale.currency,
            Sale.total,
            Sale.clock_verified,
        )
        .where(Sale.created_at >= since.astimezone(UTC).replace(tzinfo=None))
        .order_by(Sale.created_at, Sale.device, Sale.seq)
        .tuples()
    )
    for device, seq, sale_id, kind, created_at, currency, total, verified in query.execute(db):
        yield [
            device,
            seq,
            sale_id,
            kind,
            _as_utc(created_at).isoformat(),
            currency,
            str(Money(int(total), currency).decimal),
            "true" if verified else "false",
        ]


def parse_since(text: str) -> datetime:
    """An ISO date or time as an aware UTC moment (a naive one counts as UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date or time", param_hint="--since"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _as_utc(value: datetime | str) -> datetime:
    # SQLite hands back what peewee stored; the hub stores naive UTC.
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
