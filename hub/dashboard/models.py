"""The dashboard's tables: admins and their sessions, commands held for offline devices."""

from __future__ import annotations

from peewee import Database


def migrate_dashboard(db: Database) -> None:
    """Migration 9: dashboard admins, sessions, and held commands."""
