"""Loyalty points: earned by the stored-value card that paid a sale, by its store's rule.

A sale earns when it reaches the hub (SalesIngest's `on_stored`, in the batch's
transaction), on its whole total, for the card its stored-value tender debited: the
tender's reference is the debit's reference. The sale and its debit travel on two streams
(the sales outbox, the card debits) and either may come first, so each side writes the
award row for that reference and the second one to arrive awards the points. Both write
the row before they read it: on PostgreSQL the later writer waits on the row's unique key
until the earlier transaction ends, then sees it; on SQLite they never overlap. An award
is made once (`awarded_at`); refunds and voids take no points back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from peewee import BigIntegerField, CharField, Database, DateTimeField

from hub.db import is_sqlite
from hub.ingest import utc_naive
from hub.models import HubModel

log = logging.getLogger(__name__)


class LoyaltyRule(HubModel):
    """A store's rule: `points` for every full `unit` (minor units) a sale's total spends."""

    store = CharField(primary_key=True, max_length=64)
    points = BigIntegerField()
    unit = BigIntegerField()

    class Meta:
        table_name = "loyalty_rule"


class LoyaltyAward(HubModel):
    """The points one stored-value debit's sale earned (or will, once both have arrived)."""

    reference = CharField(primary_key=True, max_length=64)  # the debit's = the tender's
    sale_id = CharField(max_length=64, default="")  # "" until the sale arrives
    device = CharField(max_length=128, default="")
    store = CharField(max_length=64, null=True)
    spent = BigIntegerField(default=0)  # the sale's total
    card = CharField(max_length=64, default="")  # "" until the debit arrives
    points = BigIntegerField(default=0)
    awarded_at = DateTimeField(null=True)

    class Meta:
        table_name = "loyalty_award"


class _Tender(msgspec.Struct):
    kind: str = ""
    reference: str = ""


class _Paid(msgspec.Struct):
    """Just the tenders of a stored sale document."""

    kind: str = ""
    tenders: list[_Tender] = []


_paid = msgspec.json.Decoder(_Paid)


def set_rule(db: Database, store: str, points: int, unit: int) -> None:
    """Give `store` a rule (replacing any); 0 points stops earning there."""
    if points < 0 or unit <= 0:
        raise ValueError("points must be 0 or more and the unit positive")
    LoyaltyRule.insert(store=store, points=points, unit=unit).on_conflict(
        conflict_target=[LoyaltyRule.store], preserve=[LoyaltyRule.points, LoyaltyRule.unit]
    ).execute(db)


def points_for(db: Database, store: str | None, spent: int) -> int:
    """What `spent` earns in `store` by its rule (0 without one)."""
    if store is None or spent <= 0:
        return 0
    found = LoyaltyRule.select().where(LoyaltyRule.store == store).execute(db)
    if not found:
        return 0
    rule = found[0]
    return spent // int(rule.unit) * int(rule.points)


def award_for_debit(db: Database, reference: str, card: str) -> None:
    """In the debit's transaction: the card paid under `reference`; award if its sale is in."""
    LoyaltyAward.insert(reference=reference, card=card).on_conflict(
        conflict_target=[LoyaltyAward.reference], update={LoyaltyAward.card: card}
    ).execute(db)
    _award(db, reference)


class LoyaltyOnSales:
    """Part of SalesIngest's on_stored: each new sale paid by stored value earns its card points."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __call__(self, device: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record the stored-value sales among `rows` (just inserted) and award what can be."""
        for row in rows:
            if row.get("kind") != "sale":
                continue
            try:
                paid = _paid.decode(str(row["document"]))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # read before it was stored; nothing to earn from an odd shape
            for tender in paid.tenders:
                if tender.kind == "stored_value" and 0 < len(tender.reference) <= 64:
                    self._sale(device, tender.reference, row)

    def _sale(self, device: str, reference: str, row: Mapping[str, Any]) -> None:
        db = self._db
        _lock_card_first(db, reference)
        sale = {
            LoyaltyAward.sale_id: str(row["sale_id"]),
            LoyaltyAward.device: device,
            LoyaltyAward.store: row.get("store"),
            LoyaltyAward.spent: int(row["total"]),
        }
        LoyaltyAward.insert({LoyaltyAward.reference: reference, **sale}).on_conflict(
            conflict_target=[LoyaltyAward.reference], update=sale
        ).execute(db)
        _award(db, reference)


def _lock_card_first(db: Database, reference: str) -> None:
    """Lock the card that paid `reference`, if its debit is in, before its award row.

    A debit locks its card, then the award; a sale taking the award first and the card
    after would deadlock with it on PostgreSQL (SQLite writes one transaction at a time).
    """
    from hub.card_ledger import CardAccount, CardEntry

    if is_sqlite(db):
        return
    card = CardEntry.select(CardEntry.card).where(CardEntry.reference == reference).scalar(db)
    if card:
        CardAccount.select(CardAccount.card).where(CardAccount.card == card).for_update().execute(
            db
        )


def _award(db: Database, reference: str) -> None:
    """Award the points of `reference` once both its sale and its debit are known."""
    from hub.card_ledger import CardAccount, CardEntry

    query = LoyaltyAward.select().where(LoyaltyAward.reference == reference)
    if not is_sqlite(db):
        query = query.for_update()
    found = query.execute(db)
    if not found:
        return
    award = found[0]
    if award.awarded_at is not None or not award.sale_id or not award.card:
        return
    debit = CardEntry.select().where(
        CardEntry.reference == reference,
        CardEntry.kind != "void",  # a tombstone: the debit was voided before it came
        CardEntry.voided == False,  # noqa: E712 (SQL)
    )
    if not debit.count(db):
        return  # voided: its sale was not stored after all
    points = points_for(db, award.store, int(award.spent))
    now = utc_naive(datetime.now(UTC))
    if points:
        CardAccount.update(points=CardAccount.points + points).where(
            CardAccount.card == award.card
        ).execute(db)
    LoyaltyAward.update(points=points, awarded_at=now).where(
        LoyaltyAward.reference == reference
    ).execute(db)
    log.info("card %s…: %d points for sale %s", str(award.card)[:8], points, award.sale_id)
