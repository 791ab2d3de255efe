"""Stored-value cards at the hub: one balance per card, every change an entry kept forever.

A card is its hashed UID (`appliance.core.staff.badge_key`, as the kiosk hashes it), so the
tables list no card numbers. Every change is an entry under a reference the device or the
admin chose, UNIQUE: a request that comes again (a resend, a second worker, a retried tap)
finds its entry and changes nothing. Each change locks the card's row first (SQLite: the
write lock every transaction takes at BEGIN; PostgreSQL: SELECT ... FOR UPDATE), so two
kiosks paying from one card at once are served one after the other.

An online debit is judged: it is refused when the card holds too little. An offline debit
already happened at a kiosk (the goods are gone): it is applied whatever the balance, and
flagged when it leaves the card below zero, or could not be applied (another currency).
A void gives a debit back (its sale was not stored); one that comes before its debit
leaves a tombstone, so the debit arriving later applies nothing. Declines leave no entry:
asked again, a request is judged again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    Database,
    DateTimeField,
    SchemaManager,
)

from appliance.core.clock import Clock, SystemClock
from appliance.errors import ApplianceError
from hub.db import is_sqlite
from hub.ingest import utc_naive
from hub.loyalty import LoyaltyAward, award_for_debit
from hub.models import HubModel

log = logging.getLogger(__name__)

Mode = Literal["online", "offline", "void"]
Outcome = Literal["approved", "declined", "applied", "voided"]
Reason = Literal["", "insufficient_funds", "unknown_card", "wrong_currency", "conflict"]
Flag = Literal["", "overdraft", "wrong_currency"]
DEBIT_KINDS = ("debit", "offline_debit")


class CardLedgerError(ApplianceError):
    """A card change the hub refuses outright (a bad amount, a reference used otherwise)."""


class CardAccount(HubModel):
    """One stored-value card: its balance and loyalty points."""

    card = CharField(primary_key=True, max_length=64)  # sha256 hex of the UID
    currency = CharField(max_length=3)
    balance = BigIntegerField(default=0)  # minor units; below zero only after offline debits
    points = BigIntegerField(default=0)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "card_account"


class CardEntry(HubModel):
    """One change of a card, under its unique reference; never deleted."""

    reference = CharField(primary_key=True, max_length=64)
    card = CharField(max_length=64, index=True)
    kind = CharField(max_length=16)  # issue, top_up, debit, offline_debit, void
    amount = BigIntegerField()  # signed minor units: a debit is negative
    balance_after = BigIntegerField()
    device = CharField(max_length=128, default="")  # "" for the admin's top-ups
    flag = CharField(max_length=16, default="", index=True)  # overdraft, wrong_currency
    voided = BooleanField(default=False)  # a debit given back (its sale was not stored)
    taken_at = DateTimeField(null=True)  # when the kiosk took an offline debit
    created_at = DateTimeField()

    class Meta:
        table_name = "card_entry"


def create_card_tables(db: Database) -> None:
    """Migration 15: stored-value cards, their entries, loyalty rules and awards."""
    from hub.loyalty import LoyaltyRule

    for model in (CardAccount, CardEntry, LoyaltyRule, LoyaltyAward):
        SchemaManager(model, database=db).create_all(safe=True)


@dataclass(frozen=True, slots=True)
class CardAnswer:
    """What became of a request: the card's balance and points after it."""

    reference: str
    outcome: Outcome
    reason: Reason = ""
    balance: int = 0
    points: int = 0
    flag: Flag = ""  # on an offline debit the hub had to take


@dataclass(frozen=True, slots=True)
class CardView:
    """A card as the CLI and API show it."""

    card: str
    currency: str
    balance: int
    points: int


@dataclass(frozen=True, slots=True)
class FlaggedEntry:
    """An offline debit the hub took although it overdrew the card (or could not apply it)."""

    reference: str
    card: str
    device: str
    amount: int
    balance_after: int
    flag: str
    taken_at: str
    created_at: str


class CardLedger:
    """Card balances and their entries; thread-safe (peewee keeps a connection per thread)."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    # --- the admin's side ---

    def top_up(self, card: str, amount: int, currency: str, reference: str) -> CardView:
        """Issue a card (the first top-up) or add to it; once per reference."""
        if amount <= 0:
            raise CardLedgerError("a top-up must be a positive amount")
        now = self._now()
        with self._db.atomic():
            self._open(card, currency, now)
            account = self._locked(card)
            assert account is not None
            if account.currency != currency:
                raise CardLedgerError(f"this card holds {account.currency}, not {currency}")
            entry = self._entry(reference)
            if entry is not None:
                if (entry.card, entry.amount) != (card, amount):
                    raise CardLedgerError(f"reference {reference} was used for another change")
                return self._view(account)
            kind = "issue" if not self._has_entries(card) else "top_up"
            self._apply(account, reference, kind, amount, device="", now=now)
        log.info("card %s…: %s of %d", card[:8], kind, amount)
        return self.card(card) or self._view(account)

    def card(self, card: str) -> CardView | None:
        """A card's balance and points; None when the hub never issued it."""
        found = CardAccount.select().where(CardAccount.card == card).execute(self._db)
        return self._view(found[0]) if found else None

    def flagged(self, limit: int = 200) -> list[FlaggedEntry]:
        """The offline debits the hub took with a flag (overdrafts first among equals by age)."""
        query = (
            CardEntry.select()
            .where(CardEntry.flag != "")
            .order_by(CardEntry.created_at.desc(), CardEntry.reference)
            .limit(limit)
        )
        return [
            FlaggedEntry(
                reference=str(e.reference),
                card=str(e.card),
                device=str(e.device),
                amount=-int(e.amount),
                balance_after=int(e.balance_after),
                flag=str(e.flag),
                taken_at=e.taken_at.isoformat() if e.taken_at else "",
                created_at=e.created_at.isoformat(),
            )
            for e in query.execute(self._db)
        ]

    # --- the devices' side ---

    def request(
        self,
        device: str,
        *,
        reference: str,
        card: str,
        amount: int,
        currency: str,
        mode: Mode,
        taken_at: datetime | None = None,
    ) -> CardAnswer:
        """Judge an online debit, take an offline one, or void one; idempotent by reference."""
        if amount <= 0:
            raise CardLedgerError("a debit must be a positive amount")
        now = self._now()
        with self._db.atomic():
            if mode == "offline":  # taken at the kiosk already: never lost, even on a new card
                self._open(card, currency, now)
            account = self._locked(card)
            entry = self._entry(reference)
            if entry is not None:
                return self._repeated(
                    device, entry, card=card, amount=amount, mode=mode, account=account
                )
            if mode == "void":
                return self._void_before_debit(device, reference, card, account, now)
            if account is None:
                return CardAnswer(reference, "declined", "unknown_card")
            if mode == "online":
                if account.currency != currency:
                    return self._answer(reference, "declined", account, "wrong_currency")
                if account.balance < amount:
                    return self._answer(reference, "declined", account, "insufficient_funds")
                self._apply(account, reference, "debit", -amount, device=device, now=now)
                award_for_debit(self._db, reference, card)
                return self._answer(reference, "approved", self._locked(card))
            flag: Flag = ""
            if account.currency != currency:
                flag = "wrong_currency"
            elif account.balance < amount:
                flag = "overdraft"
            self._apply(
                account,
                reference,
                "offline_debit",
                -amount,
                device=device,
                now=now,
                flag=flag,
                taken_at=taken_at,
            )
            if flag != "wrong_currency":
                award_for_debit(self._db, reference, card)
        answer = self._answer(reference, "applied", self.card_account(card), flag=flag)
        if flag:
            log.warning(
                "card %s…: offline debit %s of %d from %s flagged %s (balance %d)",
                card[:8],
                reference,
                amount,
                device,
                flag,
                answer.balance,
            )
        return answer

    def card_account(self, card: str) -> CardAccount | None:
        """The card's row, unlocked."""
        found = CardAccount.select().where(CardAccount.card == card).execute(self._db)
        return found[0] if found else None

    # --- inside a transaction ---

    def _repeated(
        self,
        device: str,
        entry: CardEntry,
        *,
        card: str,
        amount: int,
        mode: Mode,
        account: CardAccount | None,
    ) -> CardAnswer:
        """The answer to a reference the hub holds: the first answer again, or a void now."""
        reference = str(entry.reference)
        if entry.card != card or entry.device != device:
            return self._answer(reference, "declined", None, "conflict")
        if entry.kind == "void":  # voided before its debit came: nothing is taken
            return self._answer(reference, "voided", account)
        if -int(entry.amount) != amount:
            return self._answer(reference, "declined", account, "conflict")
        applied = entry.flag != "wrong_currency"  # such a debit never touched the balance
        if mode == "void" and not entry.voided and account is not None and applied:
            account.balance = int(account.balance) - int(entry.amount)
            self._set_balance(account, self._now())
            entry.voided = True
            CardEntry.update(voided=True).where(CardEntry.reference == reference).execute(self._db)
            log.info("card %s…: debit %s of %d given back", card[:8], reference, amount)
        if mode == "void" or entry.voided:
            return self._answer(reference, "voided", account)
        outcome: Outcome = "approved" if entry.kind == "debit" else "applied"
        flag: Flag = "overdraft" if entry.flag == "overdraft" else ""
        if entry.flag == "wrong_currency":
            flag = "wrong_currency"
        return self._answer(reference, outcome, account, flag=flag)

    def _void_before_debit(
        self,
        device: str,
        reference: str,
        card: str,
        account: CardAccount | None,
        now: datetime,
    ) -> CardAnswer:
        # The void overtook its debit (two workers): a tombstone makes the debit a no-op.
        balance = int(account.balance) if account is not None else 0
        CardEntry.insert(
            reference=reference,
            card=card,
            kind="void",
            amount=0,
            balance_after=balance,
            device=device,
            created_at=now,
        ).execute(self._db)
        return self._answer(reference, "voided", account)

    def _open(self, card: str, currency: str, now: datetime) -> None:
        CardAccount.insert(
            card=card, currency=currency, balance=0, points=0, created_at=now, updated_at=now
        ).on_conflict_ignore().execute(self._db)

    def _locked(self, card: str) -> CardAccount | None:
        query = CardAccount.select().where(CardAccount.card == card)
        if not is_sqlite(self._db):  # SQLite: the write lock is already held from BEGIN
            query = query.for_update()
        found = query.execute(self._db)
        return found[0] if found else None

    def _entry(self, reference: str) -> CardEntry | None:
        if not reference or len(reference) > 64:
            raise CardLedgerError("a card change needs a reference of 1 to 64 characters")
        found = CardEntry.select().where(CardEntry.reference == reference).execute(self._db)
        return found[0] if found else None

    def _has_entries(self, card: str) -> bool:
        return bool(CardEntry.select().where(CardEntry.card == card).limit(1).count(self._db))

    def _apply(
        self,
        account: CardAccount,
        reference: str,
        kind: str,
        amount: int,
        *,
        device: str,
        now: datetime,
        flag: Flag = "",
        taken_at: datetime | None = None,
    ) -> None:
        balance = int(account.balance)
        if flag != "wrong_currency":  # kept, never applied: staff settle it by hand
            balance += amount
            account.balance = balance
            self._set_balance(account, now)
        CardEntry.insert(
            reference=reference,
            card=account.card,
            kind=kind,
            amount=amount,
            balance_after=balance,
            device=device,
            flag=flag,
            taken_at=taken_at,
            created_at=now,
        ).execute(self._db)

    def _set_balance(self, account: CardAccount, now: datetime) -> None:
        CardAccount.update(balance=account.balance, updated_at=now).where(
            CardAccount.card == account.card
        ).execute(self._db)

    def _answer(
        self,
        reference: str,
        outcome: Outcome,
        account: CardAccount | None,
        reason: Reason = "",
        *,
        flag: Flag = "",
    ) -> CardAnswer:
        if account is None:
            return CardAnswer(reference, outcome, reason, flag=flag)
        return CardAnswer(
            reference, outcome, reason, int(account.balance), int(account.points), flag
        )

    def _view(self, account: CardAccount) -> CardView:
        return CardView(
            str(account.card), str(account.currency), int(account.balance), int(account.points)
        )

    def _now(self) -> datetime:
        return utc_naive(self._clock.now())
