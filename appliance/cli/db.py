"""`appliance db`: schema migrations and integrity checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click
import peewee

from appliance.cli.options import config_options, settings_for
from appliance.errors import StoreError
from appliance.store.database import integrity_problems, open_database
from appliance.store.migrations import SCHEMA_VERSION, migrate, schema_version


@click.group()
def db() -> None:
    """Look after the local database."""


@db.command("migrate")
@config_options
def migrate_command(simulate: bool, config_path: str | None) -> None:
    """Bring the database schema up to date (a backup is made first)."""
    path = Path(settings_for(config_path, simulate).database.path)
    database = open_database(path)
    try:
        before = schema_version(database)
        applied = migrate(database, backup_dir=path.parent / "backups")
    finally:
        database.close()
    if not applied:
        click.echo(f"{path}: already up to date (schema version {SCHEMA_VERSION})")
    for migration in applied:
        click.echo(f"{path}: v{migration.version}: {migration.description}")
    if applied:
        click.echo(f"{path}: migrated from version {before} to {SCHEMA_VERSION}")


@db.command("check", short_help="Check the database's integrity; exit 1 on any problem.")
@config_options
def check_command(simulate: bool, config_path: str | None) -> None:
    """Run SQLite's integrity and foreign-key checks; exit 1 on any problem."""
    path = Path(settings_for(config_path, simulate).database.path)
    if not path.exists():
        raise StoreError(f"{path}: no database (run `appliance db migrate` first)")
    try:
        database = open_database(path)
        try:
            problems = integrity_problems(database)
            version = schema_version(database)
        finally:
            database.close()
    except (sqlite3.DatabaseError, peewee.DatabaseError) as err:
        # A badly damaged file makes SQLite fail the check itself instead of listing rows.
        raise StoreError(f"{path}: damaged, SQLite cannot check it: {err}") from err
    if problems:
        for problem in problems:
            click.echo(f"{path}: {problem}", err=True)
        raise StoreError(f"{path}: {len(problems)} integrity problem(s)")
    click.echo(f"{path}: ok (schema version {version})")
