"""Full product records in the store catalogs: descriptions and pictures (migration 7)."""

from __future__ import annotations

from peewee import Database


def migrate_catalog_records(db: Database) -> None:
    """Migration 7: the product record columns and tables the integration API writes."""
