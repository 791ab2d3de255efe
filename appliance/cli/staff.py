"""`appliance staff` and `appliance stored-value`: who may use the till, and card balances."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import click
from peewee import SqliteDatabase

from appliance.cli.options import config_options, settings_for
from appliance.core.ids import new_document_id
from appliance.core.money import Money
from appliance.core.staff import ROLES, Role
from appliance.errors import TenderError
from appliance.settings import Settings
from appliance.store.database import open_database
from appliance.store.migrations import migrate
from appliance.store.staff import StaffDirectory
from appliance.store.stored_value import StoredValueAccounts


@contextmanager
def _database(settings: Settings) -> Iterator[SqliteDatabase]:
    """The migrated database of the configured appliance, closed afterwards."""
    path = Path(settings.database.path)
    database = open_database(path)
    try:
        migrate(database, backup_dir=path.parent / "backups")
        yield database
    finally:
        database.close()


@click.group()
def staff() -> None:
    """Manage the staff who may log in to the till (PIN or NFC badge)."""


@staff.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What they may do.")
@click.option("--badge", "badge_uid", default=None, help="UID of their NFC badge (hex).")
@click.option(
    "--pin-stdin",
    is_flag=True,
    help="Read the PIN from the first line of stdin (provisioning scripts) instead of asking.",
)
@config_options
def add_command(
    name: str,
    *,  # click passes every parameter by name
    role: str,
    badge_uid: str | None,
    pin_stdin: bool,
    simulate: bool,
    config_path: str | None,
) -> None:
    """Add a staff member; their PIN is asked for twice and stored only as a slow hash."""
    settings = settings_for(config_path, simulate)
    if pin_stdin:
        pin = sys.stdin.readline().strip()
    else:
        pin = click.prompt(
            "PIN (4 to 12 digits)", hide_input=True, confirmation_prompt="The same PIN again"
        )
    with _database(settings) as database:
        member = StaffDirectory(database).add(name, cast(Role, role), pin, badge_uid)
    badge = " with a badge" if badge_uid else ""
    click.echo(f"added {member.name} ({member.role}){badge} as {member.staff_id}")


@staff.command("list")
@config_options
def list_command(simulate: bool, config_path: str | None) -> None:
    """List the active staff: id, name, role and whether they have a badge."""
    from rich.console import Console
    from rich.table import Table

    with _database(settings_for(config_path, simulate)) as database:
        members = StaffDirectory(database).members()
        with_badge = StaffDirectory(database).badge_holders()
    table = Table(title=f"{len(members)} staff member(s)", title_justify="left")
    for column in ("id", "name", "role", "badge"):
        table.add_column(column)
    for member in members:
        badge = "yes" if member.staff_id in with_badge else "no"
        table.add_row(member.staff_id, member.name, member.role, badge)
    Console().print(table)


@staff.command("remove")
@click.argument("staff_id")
@config_options
def remove_command(staff_id: str, simulate: bool, config_path: str | None) -> None:
    """Deactivate a staff member (their sales keep naming them); their badge is freed."""
    with _database(settings_for(config_path, simulate)) as database:
        StaffDirectory(database).remove(staff_id)
    click.echo(f"removed {staff_id}")


HUB_HOLDS_CARDS = "card balances are kept at the hub, since [hub] is configured"


@click.group("stored-value")
def stored_value() -> None:
    """Look after stored-value cards (gift or staff cards paid from by an NFC tap)."""


@stored_value.command("balance")
@click.argument("uid")
@config_options
def balance_command(uid: str, simulate: bool, config_path: str | None) -> None:
    """Show a card's balance (this device's own; with a hub, the hub holds the real one)."""
    settings = settings_for(config_path, simulate)
    if settings.hub is not None:
        # Still shown: moving a device's cards to the hub starts from what it held.
        click.echo(f"note: {HUB_HOLDS_CARDS}; this is what the device itself held", err=True)
    with _database(settings) as database:
        balance = StoredValueAccounts(database, settings.store.currency).balance(uid)
    if balance is None:
        raise TenderError(f"unknown card {uid}")
    click.echo(f"{uid}: {_money(balance, settings)}")


@stored_value.command("top-up")
@click.argument("uid")
@click.argument("amount")
@config_options
def top_up_command(uid: str, amount: str, simulate: bool, config_path: str | None) -> None:
    """Add AMOUNT (like 20.00, in the store's currency) to a card, opening it if new."""
    settings = settings_for(config_path, simulate)
    if settings.hub is not None:
        # A top-up here would land in a table the kiosk no longer reads: refuse, and say where.
        raise TenderError(
            f"{HUB_HOLDS_CARDS}: top it up there, `appliance-hub cards top-up UID AMOUNT"
            " --currency CODE`, AMOUNT in minor units (2000 for 20.00)"
        )
    try:
        minor = Money.parse(amount, settings.store.currency).minor
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="AMOUNT") from err
    with _database(settings) as database:
        accounts = StoredValueAccounts(database, settings.store.currency)
        balance = accounts.top_up(uid, minor, reference=f"cli-top-up-{new_document_id()}")
    added = _money(minor, settings)
    click.echo(f"{uid}: added {added}, balance {_money(balance, settings)}")


def _money(minor: int, settings: Settings) -> str:
    return Money(minor, settings.store.currency).format(settings.store.locale)
