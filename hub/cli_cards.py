"""`appliance-hub cards`: stored-value cards and loyalty at the hub, which holds their balances."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict

import click
from rich.console import Console
from rich.table import Table

from appliance.core.staff import badge_key
from appliance.errors import StaffError
from hub.card_ledger import CardLedger, CardLedgerError
from hub.cli_options import db_option, open_db
from hub.loyalty import set_rule


def _card(uid: str) -> str:
    try:
        return badge_key(uid)
    except StaffError as err:
        raise click.BadParameter(str(err), param_hint="UID") from err


@click.group("cards")
def cards() -> None:
    """Stored-value cards: balances, top-ups, flagged offline debits, loyalty rules."""


@cards.command("top-up")
@click.argument("uid")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--currency", required=True, help="ISO 4217 code, e.g. EUR.")
@click.option("--reference", help="Makes a retried top-up count once (default: a new one).")
@db_option
def top_up(uid: str, amount: int, currency: str, reference: str | None, db_url: str) -> None:
    """Issue card UID or add AMOUNT (minor units) to it."""
    db = open_db(db_url)
    try:
        view = CardLedger(db).top_up(
            _card(uid), amount, currency.upper(), reference or f"top-{uuid.uuid4().hex}"
        )
    except CardLedgerError as err:
        raise click.ClickException(str(err)) from err
    finally:
        db.close()
    click.echo(f"card {uid}: balance {view.balance} {view.currency}, {view.points} points")


@cards.command("show")
@click.argument("uid")
@db_option
def show(uid: str, db_url: str) -> None:
    """Card UID's balance and loyalty points."""
    db = open_db(db_url)
    try:
        view = CardLedger(db).card(_card(uid))
    finally:
        db.close()
    if view is None:
        raise click.ClickException(f"the hub never issued card {uid}")
    click.echo(f"card {uid}: balance {view.balance} {view.currency}, {view.points} points")


@cards.command("flagged")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
@db_option
def flagged(as_json: bool, db_url: str) -> None:
    """Offline debits the hub took with a flag: overdrafts, another currency; newest first."""
    db = open_db(db_url)
    try:
        entries = CardLedger(db).flagged()
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([asdict(e) for e in entries], indent=2))
        return
    table = Table("reached the hub (UTC)", "flag", "device", "card", "amount", "balance after")
    for e in entries:
        table.add_row(
            e.created_at, e.flag, e.device, e.card[:12], str(e.amount), str(e.balance_after)
        )
    console = Console()
    console.print(table)
    console.print(f"{len(entries)} flagged debit(s)")


@cards.command("loyalty-rule")
@click.argument("store")
@click.option("--points", type=click.IntRange(min=0), required=True, help="0 stops earning.")
@click.option(
    "--per",
    "unit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="For every full this many minor units a sale's total spends.",
)
@db_option
def loyalty_rule(store: str, points: int, unit: int, db_url: str) -> None:
    """Sales in STORE paid with a stored-value card earn POINTS per full unit spent."""
    db = open_db(db_url)
    try:
        set_rule(db, store, points, unit)
    finally:
        db.close()
    click.echo(f"store {store}: {points} point(s) per {unit} spent")
