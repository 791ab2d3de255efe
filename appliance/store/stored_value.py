"""Stored-value cards (gift or staff cards on NFC): balances that a tap pays from.

Every change is an entry with a caller-chosen reference, unique in the table: a payment
retried with the same reference (after a crash, a timeout, a double tap) finds its entry
and charges nothing more. Each change holds SQLite's write lock from read to write, so two
tills or threads paying from one card can never take it below zero.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from peewee import DatabaseError, SqliteDatabase

from appliance.core.card_balance import CardDebitResult
from appliance.core.staff import badge_key
from appliance.errors import StaffError, TenderError
from appliance.store.storage_faults import store_error

log = logging.getLogger(__name__)

_ACCOUNT = "SELECT balance, currency FROM stored_value_account WHERE uid_key = ?"
_ENTRY = "SELECT uid_key, amount, balance_after, undone FROM stored_value_entry WHERE reference = ?"
_ADD_ENTRY = (
    "INSERT INTO stored_value_entry (reference, uid_key, amount, balance_after, created_utc)"
    " VALUES (?,?,?,?,?)"
)
_SET_BALANCE = "UPDATE stored_value_account SET balance = ? WHERE uid_key = ?"
_OPEN_ACCOUNT = "INSERT INTO stored_value_account (uid_key, balance, currency) VALUES (?, 0, ?)"


def card_key(uid: str) -> str:
    """How a card's UID is stored: hashed like a staff badge, so the table lists no card numbers."""
    try:
        return badge_key(uid)
    except StaffError as err:
        raise TenderError(f"{uid!r} is not the UID of a card") from err


@contextmanager
def _stored(action: str) -> Iterator[None]:
    """A failing or locked database is the store's error, with SQLite's reason."""
    try:
        yield
    except DatabaseError as err:
        raise store_error(err, f"the card could not be {action}") from err


class StoredValueAccounts:
    """Card balances in minor units of one currency; any thread, each change one transaction."""

    def __init__(self, db: SqliteDatabase, currency: str) -> None:
        self._db = db
        self._currency = currency

    @property
    def currency(self) -> str:
        """The currency balances are kept in."""
        return self._currency

    def balance(self, uid: str) -> int | None:
        """The card's balance; None when the card is unknown."""
        try:
            key = card_key(uid)
        except TenderError:
            return None
        with _stored("read"):
            found = self._db.execute_sql(_ACCOUNT, (key,)).fetchone()
        return int(found[0]) if found else None

    def top_up(self, uid: str, amount: int, reference: str) -> int:
        """Add to a card (opening it if new); returns the new balance; once per reference."""
        if amount <= 0:
            raise TenderError("a top-up must be a positive amount")
        key = card_key(uid)
        with _stored("topped up"), self._db.atomic("IMMEDIATE"):
            repeated = self._repeat(reference, key, amount)
            if repeated is not None:
                return repeated
            account = self._db.execute_sql(_ACCOUNT, (key,)).fetchone()
            if account is None:
                self._db.execute_sql(_OPEN_ACCOUNT, (key, self._currency))
                balance = 0
            else:
                balance = self._balance_of(account)
            return self._apply(key, reference, amount, balance + amount)

    def debit(self, uid: str, amount: int, reference: str) -> int:
        """Pay `amount` from a card; returns the new balance; the same reference pays once.

        TenderError for an unknown card, a balance too small, or a reference used for a
        different payment. A reference that was credited back stays spent: retry a
        payment with a new reference.
        """
        if amount <= 0:
            raise TenderError("a payment must be a positive amount")
        key = card_key(uid)
        with _stored("charged"), self._db.atomic("IMMEDIATE"):
            repeated = self._repeat(reference, key, -amount)
            if repeated is not None:
                return repeated
            account = self._db.execute_sql(_ACCOUNT, (key,)).fetchone()
            if account is None:
                raise TenderError("unknown card")
            balance = self._balance_of(account)
            if balance < amount:
                raise TenderError("insufficient balance")
            return self._apply(key, reference, -amount, balance - amount)

    def credit_back(self, reference: str) -> None:
        """Give back a debit whose sale was not committed; nothing happens the second time."""
        with _stored("credited back"), self._db.atomic("IMMEDIATE"):
            entry = self._db.execute_sql(_ENTRY, (reference,)).fetchone()
            if entry is None:
                log.info("stored value: nothing to credit back for %s", reference)
                return  # the debit never happened
            key, amount, _after, undone = entry
            if amount > 0:
                raise TenderError(f"{reference} is a top-up, not a payment to give back")
            if undone:
                return
            account = self._db.execute_sql(_ACCOUNT, (key,)).fetchone()
            self._db.execute_sql(_SET_BALANCE, (int(account[0]) - amount, key))
            self._db.execute_sql(
                "UPDATE stored_value_entry SET undone = 1 WHERE reference = ?", (reference,)
            )
        log.info("stored value: payment %s of %d credited back", reference, -amount)

    def after(self, reference: str) -> CardDebitResult | None:
        """Cards kept on this device earn no points, and receipts show no balance (as before)."""
        return None

    def _repeat(self, reference: str, key: str, amount: int) -> int | None:
        """The balance a repeated request got the first time; None for a new reference."""
        if not reference:
            raise TenderError("a stored-value change needs a reference")
        entry = self._db.execute_sql(_ENTRY, (reference,)).fetchone()
        if entry is None:
            return None
        if (entry[0], entry[1]) != (key, amount):
            raise TenderError(f"reference {reference} was used for another card or amount")
        if entry[3]:
            raise TenderError(f"payment {reference} was given back; pay again with a new reference")
        log.info("stored value: %s repeated, nothing changed", reference)
        return int(entry[2])

    def _balance_of(self, account: tuple[int, str]) -> int:
        balance, currency = account
        if currency != self._currency:
            raise TenderError(f"this card holds {currency}, not {self._currency}")
        return int(balance)

    def _apply(self, key: str, reference: str, amount: int, balance: int) -> int:
        self._db.execute_sql(_SET_BALANCE, (balance, key))
        now = datetime.now(UTC).isoformat()
        self._db.execute_sql(_ADD_ENTRY, (reference, key, amount, balance, now))
        log.info("stored value: %s of %d, balance now %d", reference, amount, balance)
        return balance
