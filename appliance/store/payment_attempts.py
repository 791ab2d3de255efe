"""The payment-attempt journal: every card attempt, durable before the terminal hears of it.

An attempt is written ("sent") before the first request goes to the terminal, updated
with the terminal's answer, and closed either by the sale that uses it (in the sale's own
transaction, see `settle_in_commit`) or by staff deciding it was not paid. An attempt that
is still open when the appliance stops, or found open at start, is "in doubt": the card
may have been charged, so it waits for staff to settle it, and it can be settled once.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from peewee import DatabaseError, SqliteDatabase

from appliance.core.cart import Cart
from appliance.core.payment import Outcome, PaymentRequest, PaymentResult
from appliance.core.sale import Sale
from appliance.errors import DocumentError, DomainError, StoreError

log = logging.getLogger(__name__)

# The states an attempt still needs a decision in: the terminal has it, or charged it and
# no sale carries it yet, or nobody knows.
OPEN_STATES = ("sent", "approved", "unknown")
# What a terminal answer becomes; "refused" means it refused before charging anything.
_ANSWER_STATES = {
    "approved": "approved",
    "declined": "declined",
    "cancelled": "cancelled",
    "unknown": "unknown",
}
_OPEN = "('sent', 'approved', 'unknown')"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Cart)

_COLUMNS = (
    "reference, amount, currency, state, terminal_reference, card_mask, message, cart,"
    " sale_id, started_utc, updated_utc"
)
_INSERT = (
    "INSERT INTO payment_attempt (reference, amount, currency, state, cart, started_utc,"
    " updated_utc) VALUES (?, ?, ?, 'sent', ?, ?, ?)"
)
# An answer lands only on an attempt nobody has decided: one given up on at shutdown
# ("unknown") still learns what the terminal said, one staff settled is never reopened.
_ANSWER = (
    "UPDATE payment_attempt SET state = ?, terminal_reference = ?, card_mask = ?, message = ?,"
    " updated_utc = ? WHERE reference = ? AND state IN ('sent', 'unknown')"
)
_FIND_FOR_TENDER = (
    "SELECT reference, state, sale_id FROM payment_attempt"
    " WHERE reference = ? OR (terminal_reference <> '' AND terminal_reference = ?)"
)
_MARK_PAID = (
    "UPDATE payment_attempt SET state = 'paid', sale_id = ?, updated_utc = ? WHERE reference = ?"
)


@dataclass(frozen=True, slots=True)
class PaymentAttempt:
    """One card attempt as the journal holds it."""

    reference: str  # the merchant reference the terminal was given
    amount: int
    currency: str
    state: str  # sent, approved, declined, cancelled, refused, unknown, paid, not_paid
    terminal_reference: str
    card_mask: str
    message: str
    cart: Cart | None  # what the attempt was paying for, to sell it after a restart
    sale_id: str | None
    started_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        """True while nobody has decided whether it paid a sale."""
        return self.state in OPEN_STATES

    def request(self) -> PaymentRequest:
        """The request the terminal was sent."""
        return PaymentRequest(self.amount, self.currency, self.reference)

    def result(self) -> PaymentResult:
        """What the terminal said, as far as it is known."""
        outcome: Outcome = "approved" if self.state == "approved" else "unknown"
        return PaymentResult(
            outcome, self.reference, self.terminal_reference, self.card_mask, self.message
        )


class PaymentAttempts:
    """Reads and writes the journal; every method is one transaction, safe from any thread."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def begin(self, request: PaymentRequest, cart: Cart) -> None:
        """Record an attempt before the terminal hears of it; StoreError if it cannot be."""
        now = _now()
        self._write(
            _INSERT,
            (
                request.merchant_reference,
                request.amount,
                request.currency,
                _encoder.encode(cart),
                now,
                now,
            ),
        )
        log.info("card attempt %s of %d recorded", request.merchant_reference, request.amount)

    def answered(self, request: PaymentRequest, result: PaymentResult | None) -> None:
        """Record the terminal's answer (None: it refused before charging anything)."""
        if result is None:
            state, terminal_reference, card_mask, message = "refused", "", "", ""
        else:
            state = _ANSWER_STATES[result.outcome]
            terminal_reference, card_mask = result.terminal_reference, result.masked_card
            message = result.message
        changed = self._write(
            _ANSWER,
            (state, terminal_reference, card_mask, message, _now(), request.merchant_reference),
        )
        if not changed:
            log.warning(
                "card attempt %s answered %s after it was closed",
                request.merchant_reference,
                state,
            )

    def abandon_in_flight(self) -> list[str]:
        """At shutdown: attempts still with the terminal become "unknown"; their references."""
        rows = self._read("SELECT reference FROM payment_attempt WHERE state = 'sent'", ())
        references = [str(row[0]) for row in rows]
        for reference in references:
            self._write(
                "UPDATE payment_attempt SET state = 'unknown', message = ?, updated_utc = ?"
                " WHERE reference = ? AND state = 'sent'",
                ("the appliance stopped before the terminal answered", _now(), reference),
            )
            log.warning("card attempt %s in doubt: the appliance is stopping", reference)
        return references

    def settle_not_paid(self, reference: str) -> PaymentAttempt:
        """Staff saw no charge: close the attempt; DomainError if it is not open (any more)."""
        changed = self._write(
            f"UPDATE payment_attempt SET state = 'not_paid', updated_utc = ?"
            f" WHERE reference = ? AND state IN {_OPEN}",
            (_now(), reference),
        )
        attempt = self.get(reference)
        if attempt is None:
            raise DomainError(f"no card attempt {reference}")
        if not changed:
            raise DomainError(f"card attempt {reference} is already {attempt.state}")
        log.warning("card attempt %s settled: not paid", reference)
        return attempt

    def get(self, reference: str) -> PaymentAttempt | None:
        """One attempt by its merchant reference."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM payment_attempt WHERE reference = ?", (reference,)
        )
        return _attempt(rows[0]) if rows else None

    def open_attempts(self) -> list[PaymentAttempt]:
        """Attempts nobody has decided yet, oldest first (at start: all of them in doubt)."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM payment_attempt WHERE state IN {_OPEN}"
            " ORDER BY started_utc, reference",
            (),
        )
        return [_attempt(row) for row in rows]

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            with self._db.atomic("IMMEDIATE"):
                return int(self._db.execute_sql(sql, params).rowcount)
        except (DatabaseError, sqlite3.Error) as err:
            raise StoreError(f"the payment journal could not be written: {err}") from err

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            return list(self._db.execute_sql(sql, params).fetchall())
        except (DatabaseError, sqlite3.Error) as err:
            raise StoreError(f"the payment journal could not be read: {err}") from err


def settle_in_commit(cursor: sqlite3.Cursor, sale: Sale, moment: str) -> None:
    """Inside a sale's commit: its card tenders close their attempts, or the sale is refused.

    A tender whose attempt is closed already (declined, settled not paid, paying another
    sale) would be a second sale on one charge: DocumentError rolls the commit back.
    A card tender with no attempt (none was journalled) passes unchanged.
    """
    if sale.kind != "sale":
        return
    for reference in _card_references(sale):
        found = cursor.execute(_FIND_FOR_TENDER, (reference, reference)).fetchone()
        if found is None:
            continue
        attempt, state, sale_id = found
        if state not in OPEN_STATES:
            already = f" by sale {sale_id}" if sale_id else ""
            raise DocumentError(f"card payment {attempt} is already {state}{already}")
        cursor.execute(_MARK_PAID, (sale.id, moment, attempt))


def _card_references(sale: Sale) -> Iterable[str]:
    return (t.reference for t in sale.tenders if t.kind == "card" and t.reference)


def _attempt(row: tuple[object, ...]) -> PaymentAttempt:
    (reference, amount, currency, state, terminal_ref, mask, message, cart, sale_id) = row[:9]
    started, updated = row[9:11]
    return PaymentAttempt(
        reference=str(reference),
        amount=int(str(amount)),
        currency=str(currency),
        state=str(state),
        terminal_reference=str(terminal_ref),
        card_mask=str(mask),
        message=str(message),
        cart=_decoder.decode(bytes(cart)) if isinstance(cart, bytes | bytearray) else None,
        sale_id=str(sale_id) if sale_id is not None else None,
        started_at=datetime.fromisoformat(str(started)),
        updated_at=datetime.fromisoformat(str(updated)),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()
