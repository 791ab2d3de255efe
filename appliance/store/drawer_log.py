"""The drawer log: every cash drawer opening, durably, with its reason and staff member.

Each opening is chained in the fiscal journal ("drawer") in the same transaction as its
row, so the hub gets the drawer log with the journal. An opening with neither a sale nor
a reason someone gave (opened by hand) is flagged: `unexplained()`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from peewee import DatabaseError, SqliteDatabase

from appliance.core.devices import DrawerOpening, DrawerReason, is_unexplained
from appliance.store.journal import append_in_transaction
from appliance.store.models import DrawerOpeningRow
from appliance.store.storage_faults import database_folder, store_error


@dataclass(frozen=True, slots=True)
class LoggedOpening:
    """One recorded opening."""

    device: str
    opening: DrawerOpening
    opened_at: datetime
    id: int = 0

    @property
    def unexplained(self) -> bool:
        """No sale and no reason someone gave: flagged on the till and in the reports."""
        return is_unexplained(self.opening)


def drawer_event(row_id: int, device: str, opening: DrawerOpening, at: str) -> dict[str, Any]:
    """The journal body of one opening: everything the hub's drawer log shows."""
    return {
        "id": row_id,
        "device": device,
        "reason": opening.reason,
        "staff": opening.staff,
        "reference": opening.reference,
        "opened_at": at,
        "unexplained": is_unexplained(opening),
    }


class DrawerLog:
    """Records and lists drawer openings; any thread (a connection per thread)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def record(
        self, device: str, opening: DrawerOpening, at: datetime | None = None
    ) -> LoggedOpening:
        """Store one opening and its journal entry (one small transaction)."""
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        text = moment.isoformat()
        try:
            with self._db.atomic("IMMEDIATE"):
                row_id = int(
                    DrawerOpeningRow.insert(
                        device=device,
                        reason=opening.reason,
                        staff=opening.staff,
                        reference=opening.reference,
                        opened_at=text,
                    )
                    .bind(self._db)
                    .execute()
                )
                cursor = self._db.cursor()
                append_in_transaction(
                    cursor, "drawer", drawer_event(row_id, device, opening, text), text
                )
        except (DatabaseError, sqlite3.Error) as err:  # the journal writes on the raw cursor
            folder = database_folder(self._db)
            raise store_error(err, "the drawer opening could not be logged", folder) from err
        return LoggedOpening(device, opening, moment, row_id)

    def since(
        self, moment: datetime | None = None, until: datetime | None = None
    ) -> list[LoggedOpening]:
        """Openings in order, optionally from `moment` on and before `until`."""
        query = DrawerOpeningRow.select().order_by(DrawerOpeningRow.id).bind(self._db)
        if moment is not None:
            query = query.where(DrawerOpeningRow.opened_at >= moment.astimezone(UTC).isoformat())
        if until is not None:
            query = query.where(DrawerOpeningRow.opened_at < until.astimezone(UTC).isoformat())
        return [
            LoggedOpening(
                row.device,
                DrawerOpening(cast(DrawerReason, row.reason), row.staff, row.reference),
                datetime.fromisoformat(row.opened_at),
                row.id,
            )
            for row in query
        ]

    def unexplained(self, since: datetime | None = None) -> list[LoggedOpening]:
        """Openings with no sale and no reason (by hand), oldest first: flagged."""
        return [logged for logged in self.since(since) if logged.unexplained]
