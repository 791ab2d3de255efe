"""The drawer log: every cash drawer opening, durably, with its reason and staff member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from peewee import DatabaseError, SqliteDatabase

from appliance.core.devices import DrawerOpening, DrawerReason
from appliance.store.models import DrawerOpeningRow
from appliance.store.storage_faults import database_folder, store_error


@dataclass(frozen=True, slots=True)
class LoggedOpening:
    """One recorded opening."""

    device: str
    opening: DrawerOpening
    opened_at: datetime


class DrawerLog:
    """Records and lists drawer openings; main thread."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def record(self, device: str, opening: DrawerOpening, at: datetime | None = None) -> None:
        """Store one opening (its own small transaction)."""
        moment = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
        try:
            DrawerOpeningRow.insert(
                device=device,
                reason=opening.reason,
                staff=opening.staff,
                reference=opening.reference,
                opened_at=moment,
            ).bind(self._db).execute()
        except DatabaseError as err:
            folder = database_folder(self._db)
            raise store_error(err, "the drawer opening could not be logged", folder) from err

    def since(self, moment: datetime | None = None) -> list[LoggedOpening]:
        """Openings in order, optionally from `moment` on."""
        query = DrawerOpeningRow.select().order_by(DrawerOpeningRow.id).bind(self._db)
        if moment is not None:
            query = query.where(DrawerOpeningRow.opened_at >= moment.astimezone(UTC).isoformat())
        return [
            LoggedOpening(
                row.device,
                DrawerOpening(cast(DrawerReason, row.reason), row.staff, row.reference),
                datetime.fromisoformat(row.opened_at),
            )
            for row in query
        ]
