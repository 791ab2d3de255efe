"""The dashboard's tables: admins and their sessions, failed logins, and migration 9."""

from __future__ import annotations

from peewee import BlobField, CharField, Database, DateTimeField, IntegerField, SchemaManager

from hub.command_hold import create_hold_table
from hub.models import HubModel
from hub.telemetry_history import create_history_table


class DashboardAdmin(HubModel):
    """Someone who may log in to the dashboard; the password is kept only as a scrypt hash."""

    name = CharField(primary_key=True, max_length=64)
    salt = BlobField()  # random, per admin
    password_hash = BlobField()
    # The scrypt cost the hash was made with, so a later hub can raise it for new passwords.
    cost = IntegerField()  # n = 2**cost
    block_size = IntegerField()  # r
    created_at = DateTimeField()


class DashboardSession(HubModel):
    """A logged-in browser; the cookie holds a random id, the table only its SHA-256."""

    id_sha256 = CharField(primary_key=True, max_length=64)
    admin = CharField(max_length=64, index=True)
    csrf = CharField(max_length=64)  # the token every form of this session carries
    created_at = DateTimeField()
    expires_at = DateTimeField(index=True)


class LoginFailure(HubModel):
    """A failed login, counted against the name and the address it came from."""

    id = CharField(primary_key=True, max_length=32)
    name = CharField(max_length=64, index=True)
    address = CharField(max_length=64, index=True)
    at = DateTimeField(index=True)


DASHBOARD_MODELS: tuple[type[HubModel], ...] = (DashboardAdmin, DashboardSession, LoginFailure)


def migrate_dashboard(db: Database) -> None:
    """Migration 9: dashboard admins, sessions, held commands and telemetry history."""
    for model in DASHBOARD_MODELS:
        SchemaManager(model, database=db).create_all(safe=True)
    create_hold_table(db)
    create_history_table(db)
