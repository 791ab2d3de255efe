"""The dashboard's pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peewee import Database

if TYPE_CHECKING:
    from hub.api.app import WebOptions


def routes(db: Database, options: WebOptions) -> list[Any]:
    """The dashboard's route handlers."""
    return []
