"""`appliance-hub reports list|show`: the X and Z reports devices' journals brought in."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import click
from peewee import Database
from rich.console import Console
from rich.table import Table

from appliance.core.money import Money
from hub.cli_options import db_option, open_db
from hub.ingest import utc_text
from hub.journal_views import REPORT_TOTALS
from hub.models import TillReport


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One stored report as `reports list` shows it; amounts in minor units."""

    device: str
    store: str | None
    kind: str
    number: int
    journal_number: int
    made_at: str
    currency: str
    sales_gross: int | None
    refunds_total: int | None
    voids_total: int | None
    expected_cash: int | None
    counted_cash: int | None
    difference: int | None
    grand_total: int | None


def report_lines(
    db: Database, *, store: str | None = None, device: str | None = None, kind: str | None = None
) -> list[ReportLine]:
    """Stored reports, filtered, by device then kind and number."""
    query = TillReport.select().order_by(
        TillReport.device, TillReport.kind.desc(), TillReport.number, TillReport.journal_number
    )
    if store is not None:
        query = query.where(TillReport.store == store)
    if device is not None:
        query = query.where(TillReport.device == device)
    if kind is not None:
        query = query.where(TillReport.kind == kind)
    return [
        ReportLine(
            device=r.device,
            store=r.store,
            kind=r.kind,
            number=int(r.number),
            journal_number=int(r.journal_number),
            made_at=utc_text(r.made_at),
            currency=r.currency,
            **{name: getattr(r, name) for name in REPORT_TOTALS},
        )
        for r in query.execute(db)
    ]


def report_body(db: Database, device: str, number: int, kind: str = "z") -> dict[str, Any] | None:
    """A device's report as it sent it (the newest when an X number repeats), or None."""
    query = (
        TillReport.select(TillReport.body)
        .where(
            (TillReport.device == device)
            & (TillReport.kind == kind)
            & (TillReport.number == number)
        )
        .order_by(TillReport.journal_number.desc())
        .limit(1)
        .tuples()
    )
    found = list(query.execute(db))
    if not found:
        return None
    body = json.loads(found[0][0])
    return body if isinstance(body, dict) else {"body": body}


@click.group("reports")
def reports() -> None:
    """X and Z reports the appliances' journals brought to the hub."""


_kind_option = click.option(
    "--kind", type=click.Choice(["x", "z"]), help="Only X (mid-shift) or Z (closing) reports."
)


@reports.command("list")
@click.option("--store", help="Only reports of devices of this store.")
@click.option("--device", help="Only this device's reports.")
@_kind_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
@db_option
def list_command(
    store: str | None, device: str | None, kind: str | None, as_json: bool, db_url: str
) -> None:
    """One line per report: device, store, kind and number, when, and its totals."""
    db = open_db(db_url)
    try:
        lines = report_lines(db, store=store, device=device, kind=kind)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([asdict(line) for line in lines], indent=2))
        return
    table = Table(
        "device",
        "store",
        "report",
        "made (UTC)",
        "sales",
        "refunds",
        "voids",
        "counted",
        "difference",
        "grand total",
    )
    for line in lines:
        table.add_row(
            line.device,
            line.store or "-",
            f"{line.kind.upper()} {line.number}",
            line.made_at,
            *(
                _money(getattr(line, name), line.currency)
                for name in (
                    "sales_gross",
                    "refunds_total",
                    "voids_total",
                    "counted_cash",
                    "difference",
                    "grand_total",
                )
            ),
        )
    console = Console()
    console.print(table)
    console.print(f"{len(lines)} report(s)")


@reports.command("show")
@click.argument("device")
@click.argument("number", type=click.IntRange(min=1))
@click.option(
    "--kind", type=click.Choice(["x", "z"]), default="z", show_default=True, help="X or Z."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report exactly as sent.")
@db_option
def show_command(device: str, number: int, kind: str, as_json: bool, db_url: str) -> None:
    """DEVICE's report NUMBER (a Z by default) with every figure it carries."""
    db = open_db(db_url)
    try:
        body = report_body(db, device, number, kind)
    finally:
        db.close()
    if body is None:
        raise click.ClickException(f"no {kind.upper()} report {number} of {device!r} at this hub")
    if as_json:
        click.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    currency = str(body.get("currency") or "")
    table = Table(show_header=False, box=None)
    for key, value in body.items():
        table.add_row(key.replace("_", " "), _figure(key, value, currency))
    Console().print(table)


def _figure(key: str, value: object, currency: str) -> str:
    """A report value for people: amounts in major units, nested values as compact JSON."""
    if isinstance(value, int) and not isinstance(value, bool) and _is_amount(key):
        return _money(value, currency)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "-" if value is None else str(value)


def _is_amount(key: str) -> bool:
    return (
        key in REPORT_TOTALS
        or key.endswith(("_total", "_cash", "_gross"))
        or key
        in {
            "cash_in",
            "cash_out",
            "discounts",
            "rounding",
        }
    )


def _money(value: int | None, currency: str) -> str:
    if value is None:
        return "-"
    try:
        return str(Money(value, currency).decimal)
    except ValueError:  # a currency this hub does not know: the minor units as they are
        return str(value)
