"""One card debited from many hub threads at once: every change is serialized on the card.

Each thread holds its own connection, as two `serve` workers would. On PostgreSQL the card's
row is locked (SELECT ... FOR UPDATE); on SQLite every transaction takes the write lock at
BEGIN. Either way no debit is lost, none is applied twice, and no online debit is approved
beyond the balance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from peewee import Database, fn

from appliance.core.staff import badge_key
from hub.card_ledger import CardAnswer, CardEntry, CardLedger
from tests.hub.databases import KINDS, each_kind

CARD = badge_key("04C0FFEE")
THREADS = 8
T = TypeVar("T")


@pytest.fixture(params=KINDS)
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind."""
    yield from each_kind(request, tmp_path, "postgres")


def at_once(db: Database, calls: list[Callable[[], T]]) -> list[T]:
    """Run `calls` on THREADS threads released together, each with its own connection."""
    start = threading.Barrier(THREADS)

    def share(first: int) -> list[T]:
        start.wait(timeout=30)
        try:
            return [call() for call in calls[first::THREADS]]
        finally:
            db.close()  # this thread's connection only

    with ThreadPoolExecutor(THREADS) as pool:
        return [answer for share_of in pool.map(share, range(THREADS)) for answer in share_of]


def online(
    ledger: CardLedger, device: str, reference: str, amount: int
) -> Callable[[], CardAnswer]:
    """A deferred online debit of CARD in EUR."""
    return lambda: ledger.request(
        device, reference=reference, card=CARD, amount=amount, currency="EUR", mode="online"
    )


def offline(
    ledger: CardLedger, device: str, reference: str, amount: int
) -> Callable[[], CardAnswer]:
    """A deferred offline debit of CARD in EUR, taken at the kiosk already."""
    return lambda: ledger.request(
        device, reference=reference, card=CARD, amount=amount, currency="EUR", mode="offline"
    )


def entries_total(db: Database) -> int:
    """The sum of every entry on CARD: what the balance must be."""
    query = CardEntry.select(fn.SUM(CardEntry.amount)).where(CardEntry.card == CARD)
    return int(query.scalar(db) or 0)


def test_online_debits_racing_for_one_balance_approve_exactly_what_it_holds(
    hub_db: Database,
) -> None:
    ledger = CardLedger(hub_db)
    ledger.top_up(CARD, 1000, "EUR", "issue-1")
    calls = [online(ledger, f"kiosk-{i % 4}", f"race-{i}", 100) for i in range(24)]

    answers = at_once(hub_db, calls)

    approved = [a for a in answers if a.outcome == "approved"]
    declined = [a for a in answers if a.outcome == "declined"]
    assert len(approved) == 10 and len(declined) == 14, answers
    assert {a.reason for a in declined} == {"insufficient_funds"}
    # Each approval saw the balance its own debit left: ten different ones, down to zero.
    assert sorted(a.balance for a in approved) == list(range(0, 1000, 100))
    view = ledger.card(CARD)
    assert view is not None and view.balance == 0 == entries_total(hub_db)


def test_offline_debits_racing_with_online_ones_are_all_kept_and_online_never_overdraws(
    hub_db: Database,
) -> None:
    ledger = CardLedger(hub_db)
    ledger.top_up(CARD, 1000, "EUR", "issue-1")
    calls = [
        (offline if i % 2 else online)(ledger, f"kiosk-{i % 2}", f"mixed-{i}", 150)
        for i in range(16)
    ]

    answers = at_once(hub_db, calls)

    taken = [a for a in answers if a.outcome == "applied"]
    approved = [a for a in answers if a.outcome == "approved"]
    assert len(taken) == 8, answers  # offline debits are never refused: the goods are gone
    assert all(a.balance >= 0 for a in approved), approved
    view = ledger.card(CARD)
    assert view is not None
    assert view.balance == 1000 - 150 * (len(taken) + len(approved)) == entries_total(hub_db)
    assert view.balance < 0  # 8 offline debits alone pass the balance: the hub flags them
    assert {a.flag for a in taken} <= {"", "overdraft"} and "overdraft" in {a.flag for a in taken}


def test_one_debit_repeated_on_many_threads_at_once_is_applied_once(hub_db: Database) -> None:
    ledger = CardLedger(hub_db)
    ledger.top_up(CARD, 1000, "EUR", "issue-1")
    calls = [online(ledger, "kiosk-1", "retried-1", 250) for _ in range(THREADS)]

    answers = at_once(hub_db, calls)

    assert {(a.outcome, a.balance) for a in answers} == {("approved", 750)}, answers
    view = ledger.card(CARD)
    assert view is not None and view.balance == 750 == entries_total(hub_db)
    debits = CardEntry.select().where(CardEntry.reference == "retried-1").count(hub_db)
    assert debits == 1
