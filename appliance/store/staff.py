"""The staff directory: who may log in to a till, by PIN or NFC badge."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import cast

from peewee import IntegrityError, SqliteDatabase

from appliance.core.staff import (
    ROLES,
    Role,
    StaffMember,
    badge_key,
    check_pin,
    hash_pin,
    verify_pin,
)
from appliance.errors import StaffError
from appliance.store.models import StaffRow

log = logging.getLogger(__name__)

# Letters and digits that cannot be mistaken for one another when read out or typed.
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_ID_LENGTH = 6


def _member(row: StaffRow) -> StaffMember:
    return StaffMember(row.staff_id, row.name, cast(Role, row.role))


class StaffDirectory:
    """Adds, finds and removes staff members; any thread (peewee keeps a connection per thread).

    Finding someone by PIN checks the PIN against every member's scrypt hash (tens of
    milliseconds each): run it off the main thread. A badge is found by one indexed lookup.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def add(self, name: str, role: Role, pin: str, badge_uid: str | None = None) -> StaffMember:
        """Store a new member with hashes of their PIN and badge; refuses a PIN or badge in use."""
        name = name.strip()
        if not name:
            raise StaffError("a staff member needs a name")
        if role not in ROLES:
            raise StaffError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
        check_pin(pin)
        key = badge_key(badge_uid) if badge_uid is not None else None
        if key is not None and self._active(StaffRow.badge_key == key):
            raise StaffError("this badge already belongs to another staff member")
        # Logging in by PIN alone must name one person, so two members never share a PIN.
        if self._pin_owner(pin) is not None:
            raise StaffError("this PIN is already used by another staff member; choose another")
        member = StaffMember(self._new_id(), name, role)
        try:
            StaffRow.insert(
                staff_id=member.staff_id,
                name=member.name,
                role=member.role,
                pin_hash=hash_pin(pin),
                badge_key=key,
                active=True,
                created_utc=datetime.now(UTC).isoformat(),
            ).bind(self._db).execute()
        except IntegrityError as err:  # the same badge added at the same moment elsewhere
            raise StaffError("this badge already belongs to another staff member") from err
        log.info("staff member %s added as %s", member.staff_id, member.role)
        return member

    def members(self) -> list[StaffMember]:
        """Active members, by name."""
        query = (
            StaffRow.select()
            .where(StaffRow.active)
            .order_by(StaffRow.name.collate("NOCASE"), StaffRow.staff_id)
            .bind(self._db)
        )
        return [_member(row) for row in query]

    def by_pin(self, pin: str) -> StaffMember | None:
        """The active member with this PIN; slow (one scrypt per member): not on the main thread."""
        try:
            check_pin(pin)
        except StaffError:
            return None  # a PIN no one can have matches no one, without hashing anything
        row = self._pin_owner(pin)
        return _member(row) if row is not None else None

    def by_badge(self, uid: str) -> StaffMember | None:
        """The active member carrying the badge with this UID; fast."""
        try:
            key = badge_key(uid)
        except StaffError:
            return None  # not a UID any badge could have
        row = self._active(StaffRow.badge_key == key)
        return _member(row) if row is not None else None

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection (peewee keeps one per thread): after a PIN
        check on a worker, so the thread's connection does not outlive it."""
        if not self._db.is_closed():
            self._db.close()

    def remove(self, staff_id: str) -> None:
        """Deactivate a member; documents keep naming them, and their badge can be handed on."""
        updated = (
            StaffRow.update(active=False, badge_key=None)
            .where((StaffRow.staff_id == staff_id) & StaffRow.active)
            .bind(self._db)
            .execute()
        )
        if not updated:
            raise StaffError(f"no active staff member {staff_id}")
        log.info("staff member %s removed", staff_id)

    def badge_holders(self) -> set[str]:
        """Ids of the active members who have a badge."""
        query = StaffRow.select(StaffRow.staff_id).where(
            StaffRow.active & StaffRow.badge_key.is_null(False)
        )
        return {row.staff_id for row in query.bind(self._db)}

    def count(self) -> int:
        """How many active members there are."""
        return int(StaffRow.select().where(StaffRow.active).bind(self._db).count())

    def _active(self, condition: object) -> StaffRow | None:
        query = StaffRow.select().where(condition, StaffRow.active)
        return cast(StaffRow | None, query.bind(self._db).first())

    def _pin_owner(self, pin: str) -> StaffRow | None:
        query = StaffRow.select().where(StaffRow.active).bind(self._db)
        for row in list(query):  # read first: the slow checks then hold no cursor open
            if verify_pin(pin, row.pin_hash):
                return row
        return None

    def _new_id(self) -> str:
        while True:
            staff_id = "S" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
            exists = StaffRow.select().where(StaffRow.staff_id == staff_id).bind(self._db).exists()
            if not exists:
                return staff_id
