"""`appliance-hub admin add|remove|list`: who may log in to the fleet dashboard."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from hub.cli_options import db_option, open_db
from hub.dashboard.accounts import MIN_PASSWORD, AdminError, add_admin, list_admins, remove_admin
from hub.db import HubDatabaseError, open_hub_database
from hub.ingest import utc_naive
from hub.migrations import migrate


@click.group("admin")
def admin_group() -> None:
    """Dashboard admins: a name and a password, kept hashed (scrypt) in the hub database."""


@admin_group.command("add")
@db_option
@click.argument("name")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="APPLIANCE_HUB_ADMIN_PASSWORD",
    help=f"Asked for when not given (at least {MIN_PASSWORD} characters).",
)
@click.option("--replace", is_flag=True, help="Set a new password for an existing admin.")
def add(db_url: str, name: str, password: str, replace: bool) -> None:
    """Let NAME log in to the dashboard (`appliance-hub web`); makes the database if need be."""
    try:
        db = open_hub_database(db_url)
        migrate(db)
    except HubDatabaseError as err:
        raise click.ClickException(str(err)) from err
    try:
        add_admin(db, name, password, now=utc_naive(datetime.now(UTC)), replace=replace)
    except AdminError as err:
        raise click.ClickException(str(err)) from err
    finally:
        db.close()
    done = "has a new password; their sessions ended" if replace else "may log in"
    click.echo(f"admin {name} {done}")


@admin_group.command("remove")
@db_option
@click.argument("name")
def remove(db_url: str, name: str) -> None:
    """Remove NAME; their open sessions end at once."""
    db = open_db(db_url)
    try:
        found = remove_admin(db, name)
    finally:
        db.close()
    if not found:
        raise click.ClickException(f"no admin {name!r}")
    click.echo(f"admin {name} removed")


@admin_group.command("list")
@db_option
def list_command(db_url: str) -> None:
    """Every admin, with how many sessions they have open."""
    db = open_db(db_url)
    try:
        admins = list_admins(db)
    finally:
        db.close()
    table = Table("name", "created (UTC)", "sessions")
    for admin in admins:
        table.add_row(admin.name, f"{admin.created_at:%Y-%m-%d %H:%M}", str(admin.sessions))
    Console().print(table)
    click.echo(f"{len(admins)} admin(s)")
