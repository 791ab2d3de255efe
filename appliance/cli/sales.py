"""`appliance sales`: export committed documents as CSV."""

from __future__ import annotations

import csv
import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import click

from appliance.cli.existing_db import existing_database
from appliance.cli.options import config_options, settings_for
from appliance.core.money import Money
from appliance.core.sale import Sale
from appliance.store.documents import SalesLedger

COLUMNS = (
    "receipt_number",
    "sequence",
    "document_id",
    "kind",
    "created_at",
    "currency",
    "total",
    "tax",
    "discount",
    "tenders",
    "change",
    "lines",
    "refers_to",
    "staff",
)


@click.group()
def sales() -> None:
    """Committed sales, refunds and voids."""


@sales.command("export")
@click.option(
    "--since",
    metavar="DATE",
    help="Only documents from this ISO date or time on (UTC if no zone).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CSV to FILE (default: stdout).",
)
@config_options
def export_command(
    since: str | None, output: Path | None, simulate: bool, config_path: str | None
) -> None:
    """Write one CSV row per document, in sequence order; amounts in major units."""
    moment = _parse_since(since) if since else None
    settings = settings_for(config_path, simulate)
    with existing_database(settings) as database:
        ledger = SalesLedger(database, settings.device.receipt_prefix)
        with (
            output.open("w", newline="", encoding="utf-8")
            if output
            else nullcontext(sys.stdout) as handle
        ):
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for sale in ledger.since(moment):
                writer.writerow(_row(sale))


def _row(sale: Sale) -> list[object]:
    def amount(minor: int) -> str:
        return str(Money(minor, sale.currency).decimal)

    tenders = ";".join(f"{t.kind}:{amount(t.amount)}" for t in sale.tenders)
    return [
        sale.receipt_number,
        sale.sequence,
        sale.id,
        sale.kind,
        sale.created_at.isoformat(),
        sale.currency,
        amount(sale.total),
        amount(sale.tax_total),
        amount(sale.discount_total),
        tenders,
        amount(sale.change),
        len(sale.lines),
        sale.references or "",
        sale.staff,
    ]


def _parse_since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date or time", param_hint="--since"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
