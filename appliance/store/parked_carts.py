"""Parked carts: a cart put aside (the customer fetches their wallet) and resumed later."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from peewee import SqliteDatabase

from appliance.core.cart import Cart
from appliance.core.ids import new_document_id
from appliance.errors import CartError, StoreError
from appliance.store.models import ParkedCartRow

log = logging.getLogger(__name__)

# The whole cart, every line field and both kinds of discount, round-trips through JSON.
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Cart)


@dataclass(frozen=True, slots=True)
class ParkedCart:
    """What a list of parked carts shows; the cart itself comes back through `take`."""

    park_id: str
    label: str
    staff_id: str
    parked_at: datetime
    lines: int
    total: int
    currency: str


class ParkedCarts:
    """Parks carts durably (a restart keeps them) and hands each one back exactly once."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def park(self, cart: Cart, *, label: str, staff_id: str, total: int) -> ParkedCart:
        """Store the cart with what the list shows of it; an empty cart is refused."""
        if cart.is_empty:
            raise CartError("there is nothing in the cart to park")
        parked = ParkedCart(
            park_id=new_document_id(),
            label=label.strip(),
            staff_id=staff_id,
            parked_at=datetime.now(UTC),
            lines=len(cart.lines),
            total=total,
            currency=cart.currency,
        )
        ParkedCartRow.insert(
            park_id=parked.park_id,
            label=parked.label,
            staff_id=parked.staff_id,
            parked_utc=parked.parked_at.isoformat(),
            currency=parked.currency,
            lines=parked.lines,
            total=parked.total,
            body=_encoder.encode(cart),
        ).bind(self._db).execute()
        log.info("cart parked as %s (%d lines)", parked.park_id, parked.lines)
        return parked

    def list(self) -> list[ParkedCart]:
        """Parked carts, oldest first."""
        query = (
            ParkedCartRow.select(
                ParkedCartRow.park_id,
                ParkedCartRow.label,
                ParkedCartRow.staff_id,
                ParkedCartRow.parked_utc,
                ParkedCartRow.lines,
                ParkedCartRow.total,
                ParkedCartRow.currency,
            )
            .order_by(ParkedCartRow.parked_utc, ParkedCartRow.park_id)
            .bind(self._db)
        )
        return [
            ParkedCart(
                row.park_id,
                row.label,
                row.staff_id,
                datetime.fromisoformat(row.parked_utc),
                row.lines,
                row.total,
                row.currency,
            )
            for row in query
        ]

    def take(self, park_id: str, *, currency: str | None = None) -> Cart:
        """The parked cart, removed from the list in the same transaction; StoreError if gone.

        With `currency`, a cart in another currency is refused and stays parked: the till
        could not carry on with it, and taken it would be lost.
        """
        with self._db.atomic("IMMEDIATE"):
            found = self._db.execute_sql(
                "SELECT body FROM parked_cart WHERE park_id = ?", (park_id,)
            ).fetchone()
            if found is None:
                raise StoreError("this parked cart was already resumed or never existed")
            try:
                cart = _decoder.decode(found[0])
            except msgspec.DecodeError as err:
                # Raising here rolls back: the row stays for someone to look at.
                raise StoreError(f"parked cart {park_id} cannot be read: {err}") from err
            if currency is not None and cart.currency != currency:
                raise StoreError(f"parked cart {park_id} is in {cart.currency}, not {currency}")
            self._db.execute_sql("DELETE FROM parked_cart WHERE park_id = ?", (park_id,))
        log.info("parked cart %s taken", park_id)
        return cart

    def count(self) -> int:
        """How many carts are parked."""
        return int(ParkedCartRow.select().bind(self._db).count())
