"""Stored-value cards the hub holds, as this device knows them, and its debits until settled.

An offline debit is written here before its sale (in its own transaction, under SQLite's
write lock from the limit check to the insert), so it survives a restart and reaches the
hub even if the device dies right after: the hub never loses a debit. A void (a sale that
could not be stored after its debit) waits here too. Rows the hub has answered stay, as
`settled` or `voided`: the offline limit counts a day's debits, and a receipt finds the
balance and points a debit left.

An online debit is written as `asking` before the hub is asked, so that no money the hub
took is ever lost track of: a refusal after an unanswered request voids it (the hub may
still approve the request late), and each start checks the debits an earlier run took
against the sales it stored, voiding those whose sale never was (a crash between the
debit and the sale).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from peewee import DatabaseError, SqliteDatabase

from appliance.core.card_balance import CardDebitResult, KnownCard, offline_refusal
from appliance.errors import CardOfflineError, TenderError
from appliance.store.storage_faults import store_error

log = logging.getLogger(__name__)

_CARD = "SELECT card_key, currency, balance, points, known_utc FROM hub_card WHERE card_key = ?"
_REMEMBER = (
    "INSERT INTO hub_card (card_key, currency, balance, points, known_utc) VALUES (?,?,?,?,?)"
    " ON CONFLICT(card_key) DO UPDATE SET currency = excluded.currency,"
    " balance = excluded.balance, points = excluded.points, known_utc = excluded.known_utc"
)
_DEBIT = "SELECT card_key, amount, state, balance, points FROM hub_card_debit WHERE reference = ?"
_DEBIT_AFTER = "SELECT balance, points, state, offline FROM hub_card_debit WHERE reference = ?"
_ADD_DEBIT = (
    "INSERT INTO hub_card_debit (reference, card_key, amount, currency, offline, state, day,"
    " balance, points, created_utc) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_UNSETTLED = (
    "SELECT COALESCE(SUM(amount), 0) FROM hub_card_debit"
    " WHERE card_key = ? AND offline = 1 AND state = 'pending'"
)
_SPENT_ON = (
    "SELECT COALESCE(SUM(amount), 0) FROM hub_card_debit"
    " WHERE card_key = ? AND offline = 1 AND day = ? AND state IN ('pending', 'settled')"
)
_TO_SEND = (
    "SELECT reference, card_key, amount, currency, state, created_utc FROM hub_card_debit"
    " WHERE state IN ('pending', 'void') ORDER BY created_utc, reference LIMIT ?"
)
_WAITING = (
    "SELECT state, COUNT(*), COALESCE(SUM(amount), 0), MIN(created_utc) FROM hub_card_debit"
    " WHERE state IN ('pending', 'void') GROUP BY state"
)
_SET_STATE = "UPDATE hub_card_debit SET state = ?, balance = ?, points = ? WHERE reference = ?"
_CONFIRM = (
    "UPDATE hub_card_debit SET state = 'settled', offline = 0, balance = ?, points = ?"
    " WHERE reference = ?"
)
_FORGET = "DELETE FROM hub_card WHERE card_key = ?"
_DECLINE = "UPDATE hub_card_debit SET state = 'declined' WHERE reference = ? AND state = 'asking'"
_DROP_ASKING = "DELETE FROM hub_card_debit WHERE reference = ? AND state = 'asking'"
_UNCHECKED = (
    "SELECT reference, created_utc FROM hub_card_debit WHERE sale_checked = 0"
    " AND state IN ('asking', 'pending', 'settled') AND created_utc < ? ORDER BY created_utc"
)
_CHECKED = "UPDATE hub_card_debit SET sale_checked = 1 WHERE reference = ?"
_VOID_UNSOLD = "UPDATE hub_card_debit SET state = 'void', sale_checked = 1 WHERE reference = ?"


@dataclass(frozen=True, slots=True)
class DebitToSend:
    """An offline debit or a void the hub has not answered yet."""

    reference: str
    card: str
    amount: int
    currency: str
    mode: str  # "offline" or "void"
    taken_at: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class DebitsWaiting:
    """What this device holds for the hub: offline debits and voids not yet answered."""

    debits: int = 0
    debit_amount: int = 0
    voids: int = 0
    void_amount: int = 0
    oldest: datetime | None = None  # when the oldest of them was taken (UTC)


@contextmanager
def _stored(action: str) -> Iterator[None]:
    try:
        yield
    except DatabaseError as err:
        raise store_error(err, f"the card debit could not be {action}") from err


@dataclass(frozen=True, slots=True)
class _NewDebit:
    """A debit row as first written."""

    reference: str
    card: str
    amount: int
    currency: str
    day: date
    at: datetime


class CardDebitStore:
    """Known cards and this device's debits of them; any thread, each change one transaction."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def _add(
        self, debit: _NewDebit, state: str, *, offline: bool, balance: int, points: int
    ) -> None:
        """Write a new debit row (inside the caller's transaction)."""
        self._db.execute_sql(
            _ADD_DEBIT,
            (debit.reference, debit.card, debit.amount, debit.currency, int(offline), state,
             debit.day.isoformat(), balance, points, debit.at.isoformat()),
        )  # fmt: skip

    def known(self, card: str) -> KnownCard | None:
        """The card as the hub last described it; None when never heard of here."""
        with _stored("read"):
            row = self._db.execute_sql(_CARD, (card,)).fetchone()
        return _known(row) if row else None

    def remember(self, card: str, currency: str, balance: int, points: int, at: datetime) -> None:
        """The hub's latest word on a card."""
        with _stored("saved"), self._db.atomic("IMMEDIATE"):
            self._db.execute_sql(_REMEMBER, (card, currency, balance, points, at.isoformat()))

    def available(self, card: str) -> int | None:
        """The last known balance less what the card paid here offline since; None: unknown."""
        with _stored("read"):
            row = self._db.execute_sql(_CARD, (card,)).fetchone()
            if row is None:
                return None
            unsettled = int(self._db.execute_sql(_UNSETTLED, (card,)).fetchone()[0])
        return int(row[2]) - unsettled

    def asking(
        self, reference: str, card: str, amount: int, currency: str, *, day: date, at: datetime
    ) -> None:
        """An online debit is about to be asked: kept until answered, taken offline or voided."""
        with _stored("saved"), self._db.atomic("IMMEDIATE"):
            if self._db.execute_sql(_DEBIT, (reference,)).fetchone() is None:
                new = _NewDebit(reference, card, amount, currency, day, at)
                self._add(new, "asking", offline=False, balance=0, points=0)

    def forget(self, card: str) -> None:
        """Know nothing of a card any more: it cannot pay offline here."""
        with _stored("saved"), self._db.atomic("IMMEDIATE"):
            self._db.execute_sql(_FORGET, (card,))

    def declined(self, reference: str) -> None:
        """The hub declined an online debit: it took nothing."""
        with _stored("saved"), self._db.atomic("IMMEDIATE"):
            self._db.execute_sql(_DECLINE, (reference,))

    def confirmed(
        self,
        reference: str,
        card: str,
        amount: int,
        currency: str,
        *,
        balance: int,
        points: int,
        day: date,
        at: datetime,
    ) -> None:
        """The hub approved a debit online: remember it (and the card) as settled."""
        with _stored("saved"), self._db.atomic("IMMEDIATE"):
            self._db.execute_sql(_REMEMBER, (card, currency, balance, points, at.isoformat()))
            if self._db.execute_sql(_DEBIT, (reference,)).fetchone() is not None:
                self._db.execute_sql(_CONFIRM, (balance, points, reference))
            else:
                new = _NewDebit(reference, card, amount, currency, day, at)
                self._add(new, "settled", offline=False, balance=balance, points=points)

    def take_offline(
        self,
        reference: str,
        card: str,
        amount: int,
        currency: str,
        *,
        limit: int,
        day: date,
        at: datetime,
    ) -> tuple[int, int]:
        """Take a debit without the hub, within the rules; (balance left, points) as known.

        TenderError when it holds too little as far as known; CardOfflineError when it may not
        pay offline (unknown here, over the day's limit). The same reference
        taken again changes nothing.
        """
        with _stored("saved"), self._db.atomic("IMMEDIATE"):
            # An online request left unanswered becomes this offline debit, same reference.
            self._db.execute_sql(_DROP_ASKING, (reference,))
            repeated = self._db.execute_sql(_DEBIT, (reference,)).fetchone()
            if repeated is not None:
                return int(repeated[3]), int(repeated[4])
            row = self._db.execute_sql(_CARD, (card,)).fetchone()
            known = _known(row) if row else None
            unsettled = int(self._db.execute_sql(_UNSETTLED, (card,)).fetchone()[0])
            spent = int(self._db.execute_sql(_SPENT_ON, (card, day.isoformat())).fetchone()[0])
            refusal = offline_refusal(
                known,
                amount,
                currency=currency,
                unsettled=unsettled,
                spent_today=spent,
                limit=limit,
            )
            if refusal == "insufficient balance":
                raise TenderError(refusal)  # as the hub would say: the card holds too little
            if refusal:
                raise CardOfflineError(refusal)
            assert known is not None
            balance = known.balance - unsettled - amount
            new = _NewDebit(reference, card, amount, currency, day, at)
            self._add(new, "pending", offline=True, balance=balance, points=known.points)
        log.info("card debit %s of %d taken offline; %d left as known", reference, amount, balance)
        return balance, known.points

    def void(
        self,
        reference: str,
        *,
        card: str = "",
        amount: int = 0,
        currency: str = "",
        day: date | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Have the hub give back the debit `reference`; False when this device never took it
        (and `card` is not given to record an online one now)."""
        with _stored("voided"), self._db.atomic("IMMEDIATE"):
            row = self._db.execute_sql(_DEBIT, (reference,)).fetchone()
            if row is None:
                if not card or day is None or at is None:
                    return False
                new = _NewDebit(reference, card, amount, currency, day, at)
                self._add(new, "void", offline=False, balance=0, points=0)
                return True
            if row[2] == "declined":
                return False  # the hub took nothing
            if row[2] not in ("voided", "void"):
                self._db.execute_sql(_SET_STATE, ("void", row[3], row[4], reference))
        return True

    def unchecked_before(self, moment: datetime) -> list[tuple[str, datetime]]:
        """Debits taken before `moment` whose sale no start has looked for: (reference, when)."""
        with _stored("read"):
            rows = self._db.execute_sql(_UNCHECKED, (moment.isoformat(),)).fetchall()
        return [(str(r), datetime.fromisoformat(str(at))) for r, at in rows]

    def sale_found(self, reference: str) -> None:
        """A start found the sale the debit `reference` paid."""
        with _stored("saved"), self._db.atomic("IMMEDIATE"):
            self._db.execute_sql(_CHECKED, (reference,))

    def void_unsold(self, reference: str) -> None:
        """A debit an earlier run took for a sale it never stored: have the hub give it back."""
        with _stored("voided"), self._db.atomic("IMMEDIATE"):
            self._db.execute_sql(_VOID_UNSOLD, (reference,))

    def after(self, reference: str) -> CardDebitResult | None:
        """The card's balance and points as known after the debit `reference`; None: not here."""
        with _stored("read"):
            row = self._db.execute_sql(_DEBIT_AFTER, (reference,)).fetchone()
        if row is None or row[2] in ("void", "voided", "asking", "declined"):
            return None
        return CardDebitResult(reference, int(row[0]), int(row[1]), offline=bool(row[3]))

    def to_send(self, limit: int = 50) -> list[DebitToSend]:
        """Offline debits and voids the hub has not answered, oldest first."""
        with _stored("read"):
            rows = self._db.execute_sql(_TO_SEND, (limit,)).fetchall()
        return [
            DebitToSend(
                str(r[0]),
                str(r[1]),
                int(r[2]),
                str(r[3]),
                "offline" if r[4] == "pending" else "void",
                str(r[5]),
            )
            for r in rows
        ]

    def waiting(self) -> DebitsWaiting:
        """The offline debits and voids the hub has not answered yet, counted and summed."""
        with _stored("read"):
            rows = self._db.execute_sql(_WAITING).fetchall()
        by_state = {str(state): (int(n), int(total), str(first)) for state, n, total, first in rows}
        debits, debit_amount, first_debit = by_state.get("pending", (0, 0, ""))
        voids, void_amount, first_void = by_state.get("void", (0, 0, ""))
        firsts = [datetime.fromisoformat(at) for at in (first_debit, first_void) if at]
        return DebitsWaiting(debits, debit_amount, voids, void_amount, min(firsts, default=None))

    def settle(
        self,
        reference: str,
        *,
        voided: bool,
        balance: int,
        points: int,
        currency: str,
        at: datetime,
        card_known: bool = True,
    ) -> bool:
        """The hub answered a debit or void: settle it, and take its word on the card (or,
        not `card_known`, forget the card: its balance is no base for paying here). True when
        it was an offline debit or a void that waited for the hub."""
        with _stored("settled"), self._db.atomic("IMMEDIATE"):
            row = self._db.execute_sql(_DEBIT, (reference,)).fetchone()
            if row is None:
                return False
            card, state = str(row[0]), str(row[2])
            if state == "void" and not voided:
                return False  # an answer to the debit overtaken by its void: the void goes
            self._db.execute_sql(
                _SET_STATE, ("voided" if voided else "settled", balance, points, reference)
            )
            if card_known:
                self._db.execute_sql(_REMEMBER, (card, currency, balance, points, at.isoformat()))
            else:
                self._db.execute_sql(_FORGET, (card,))
        return state in ("pending", "void")


def _known(row: tuple[str, str, int, int, str]) -> KnownCard:
    card, currency, balance, points, known_utc = row
    return KnownCard(
        str(card), str(currency), int(balance), int(points), datetime.fromisoformat(known_utc)
    )
