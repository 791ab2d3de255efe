"""The webhook tables: endpoints, events and their deliveries (migration 8)."""

from __future__ import annotations

from peewee import Database


def create_webhook_tables(db: Database) -> None:
    """Migration 8: the webhook endpoints and the durable delivery queue."""
