"""Stored-value cards: top-ups, idempotent debits, credit-backs, and no overdraft under races."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from peewee import SqliteDatabase

from appliance.core.staff import badge_key
from appliance.errors import StoreError, TenderError
from appliance.store.database import open_database
from appliance.store.stored_value import StoredValueAccounts

CARD = "04CAFE00000001"
OTHER = "04CAFE00000002"


@pytest.fixture
def accounts(db: SqliteDatabase) -> StoredValueAccounts:
    return StoredValueAccounts(db, "EUR")


def test_a_top_up_opens_the_card_and_debits_take_from_it(
    accounts: StoredValueAccounts, db: SqliteDatabase
) -> None:
    assert accounts.balance(CARD) is None
    assert accounts.top_up(CARD, 5000, "top-up-1") == 5000
    assert accounts.top_up(CARD.lower(), 1000, "top-up-2") == 6000  # the same card, any case
    assert accounts.debit(CARD, 1250, "sale-1") == 4750
    assert accounts.balance(CARD) == 4750
    assert accounts.balance(OTHER) is None
    assert accounts.balance("not a uid") is None
    # The card number is not in the table, only its hash.
    rows = db.execute_sql("SELECT uid_key, balance, currency FROM stored_value_account").fetchall()
    assert rows == [(badge_key(CARD), 4750, "EUR")]


def test_the_same_reference_debits_once_and_answers_the_same(
    accounts: StoredValueAccounts, db: SqliteDatabase
) -> None:
    accounts.top_up(CARD, 5000, "top-up-1")
    assert accounts.debit(CARD, 1200, "sale-1") == 3800
    accounts.debit(CARD, 300, "sale-2")
    # A retry of the first payment (a timeout, a double tap) charges nothing more.
    assert accounts.debit(CARD, 1200, "sale-1") == 3800
    assert accounts.top_up(CARD, 5000, "top-up-1") == 5000  # a top-up too is applied once
    assert accounts.balance(CARD) == 3500
    entries = db.execute_sql("SELECT COUNT(*) FROM stored_value_entry").fetchone()[0]
    assert entries == 3
    with pytest.raises(TenderError, match="another card or amount"):
        accounts.debit(CARD, 999, "sale-1")
    accounts.top_up(OTHER, 5000, "top-up-other")
    with pytest.raises(TenderError, match="another card or amount"):
        accounts.debit(OTHER, 1200, "sale-1")
    assert accounts.balance(CARD) == 3500 and accounts.balance(OTHER) == 5000


def test_refused_debits_change_nothing(accounts: StoredValueAccounts) -> None:
    accounts.top_up(CARD, 1000, "top-up-1")
    with pytest.raises(TenderError, match="insufficient balance"):
        accounts.debit(CARD, 1001, "sale-1")
    with pytest.raises(TenderError, match="unknown card"):
        accounts.debit(OTHER, 100, "sale-2")
    with pytest.raises(TenderError, match="not the UID of a card"):
        accounts.debit("not a uid", 100, "sale-3")
    with pytest.raises(TenderError, match="positive"):
        accounts.debit(CARD, 0, "sale-4")
    with pytest.raises(TenderError, match="positive"):
        accounts.top_up(CARD, -5, "top-up-2")
    with pytest.raises(TenderError, match="needs a reference"):
        accounts.debit(CARD, 100, "")
    assert accounts.balance(CARD) == 1000
    # The refused reference was not used up: the same payment can go through now.
    assert accounts.debit(CARD, 1000, "sale-1") == 0


def test_a_credit_back_returns_the_money_once(accounts: StoredValueAccounts) -> None:
    accounts.top_up(CARD, 2000, "top-up-1")
    accounts.debit(CARD, 1500, "sale-1")

    accounts.credit_back("sale-1")
    accounts.credit_back("sale-1")
    accounts.credit_back("never-debited")

    assert accounts.balance(CARD) == 2000
    # The reference is spent: a late retry of that payment does not charge again.
    with pytest.raises(TenderError, match="new reference"):
        accounts.debit(CARD, 1500, "sale-1")
    with pytest.raises(TenderError, match="top-up"):
        accounts.credit_back("top-up-1")
    assert accounts.debit(CARD, 1500, "sale-1-retry") == 500


def test_a_card_in_another_currency_is_refused(
    accounts: StoredValueAccounts, db: SqliteDatabase
) -> None:
    accounts.top_up(CARD, 2000, "top-up-1")
    francs = StoredValueAccounts(db, "CHF")
    with pytest.raises(TenderError, match="holds EUR"):
        francs.debit(CARD, 100, "sale-1")
    assert francs.currency == "CHF"
    assert accounts.balance(CARD) == 2000


def test_two_threads_paying_from_one_card_never_overdraw_it(
    accounts: StoredValueAccounts, db_path: Path
) -> None:
    accounts.top_up(CARD, 1000, "top-up-1")
    attempts = 40  # 2 x 40 payments of 0.30 against 10.00: 33 can succeed
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def pay(till: str) -> None:
        # Each till has its own connection, as two processes would.
        db = open_database(db_path)
        mine = StoredValueAccounts(db, "EUR")
        try:
            start.wait()
            for n in range(attempts):
                try:
                    mine.debit(CARD, 30, f"{till}-{n}")
                    result = "paid"
                except TenderError as err:
                    result = str(err)
                with lock:
                    outcomes.append(result)
        finally:
            db.close()

    tills = [threading.Thread(target=pay, args=(name,)) for name in ("a", "b")]
    for till in tills:
        till.start()
    for till in tills:
        till.join(timeout=60)

    assert len(outcomes) == 2 * attempts
    assert outcomes.count("paid") == 1000 // 30
    assert set(outcomes) == {"paid", "insufficient balance"}
    assert accounts.balance(CARD) == 1000 - 30 * (1000 // 30)


def test_a_failing_database_is_a_store_error(
    accounts: StoredValueAccounts, db: SqliteDatabase
) -> None:
    accounts.top_up(CARD, 1000, "top-up-1")
    db.execute_sql("DROP TABLE stored_value_entry")
    with pytest.raises(StoreError, match="could not be charged"):
        accounts.debit(CARD, 100, "sale-1")
    assert accounts.balance(CARD) == 1000
