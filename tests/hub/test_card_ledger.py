"""One balance per card at the hub: online debits judged, offline ones taken and flagged,
voids, idempotent references, and loyalty points for the card that paid a sale."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from peewee import Database

from appliance.core.staff import badge_key
from appliance.mqtt.payloads import SaleEnvelope, SalesBatch
from hub.card_ledger import CardEntry, CardLedger, CardLedgerError
from hub.ingest import SalesIngest
from hub.loyalty import LoyaltyAward, LoyaltyOnSales, set_rule
from hub.stores import assign_device
from tests.hub.databases import KINDS, each_kind
from tests.hub.test_ingest import sale_document, sale_id_of

CARD = badge_key("04A1B2C3")


@pytest.fixture(params=KINDS)
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind."""
    yield from each_kind(request, tmp_path, "postgres")


@pytest.fixture
def ledger(hub_db: Database) -> CardLedger:
    """A ledger holding CARD with 10.00 EUR."""
    cards = CardLedger(hub_db)
    cards.top_up(CARD, 1000, "EUR", "issue-1")
    return cards


def debit(ledger: CardLedger, reference: str, amount: int, mode: str = "online", **kw: str):  # type: ignore[no-untyped-def]
    """A debit from kiosk-1 in EUR."""
    return ledger.request(
        kw.get("device", "kiosk-1"),
        reference=reference,
        card=kw.get("card", CARD),
        amount=amount,
        currency=kw.get("currency", "EUR"),
        mode=mode,  # type: ignore[arg-type]
    )


def test_an_online_debit_is_approved_with_the_new_balance(ledger: CardLedger) -> None:
    answer = debit(ledger, "sv-1", 300)
    assert (answer.outcome, answer.balance) == ("approved", 700)
    assert ledger.card(CARD).balance == 700  # type: ignore[union-attr]


def test_a_repeated_reference_gets_the_same_answer_and_debits_once(ledger: CardLedger) -> None:
    first = debit(ledger, "sv-1", 300)
    again = debit(ledger, "sv-1", 300)
    as_offline = debit(ledger, "sv-1", 300, "offline")
    assert first == again
    assert as_offline.outcome == "approved" and as_offline.balance == 700
    assert ledger.card(CARD).balance == 700  # type: ignore[union-attr]


def test_an_online_debit_beyond_the_balance_is_declined_and_changes_nothing(
    ledger: CardLedger,
) -> None:
    answer = debit(ledger, "sv-1", 1001)
    assert (answer.outcome, answer.reason, answer.balance) == (
        "declined",
        "insufficient_funds",
        1000,
    )
    assert ledger.card(CARD).balance == 1000  # type: ignore[union-attr]


def test_unknown_cards_and_other_currencies_are_declined_online(ledger: CardLedger) -> None:
    assert debit(ledger, "sv-1", 1, card=badge_key("FF")).reason == "unknown_card"
    assert debit(ledger, "sv-2", 1, currency="CHF").reason == "wrong_currency"


def test_an_offline_debit_is_taken_even_below_zero_and_flagged(ledger: CardLedger) -> None:
    debit(ledger, "sv-online", 800)  # the other kiosk, online
    answer = debit(ledger, "sv-offline", 500, "offline", device="kiosk-2")
    assert (answer.outcome, answer.balance, answer.flag) == ("applied", -300, "overdraft")
    [flagged] = ledger.flagged()
    assert (flagged.reference, flagged.device, flagged.amount, flagged.balance_after) == (
        "sv-offline",
        "kiosk-2",
        500,
        -300,
    )


def test_an_offline_debit_within_the_balance_is_not_flagged(ledger: CardLedger) -> None:
    answer = debit(ledger, "sv-offline", 400, "offline")
    assert (answer.outcome, answer.balance, answer.flag) == ("applied", 600, "")
    assert ledger.flagged() == []


def test_an_offline_debit_on_a_card_the_hub_never_issued_is_kept(hub_db: Database) -> None:
    answer = debit(CardLedger(hub_db), "sv-x", 200, "offline")
    assert (answer.outcome, answer.balance, answer.flag) == ("applied", -200, "overdraft")


def test_a_void_gives_the_debit_back_once(ledger: CardLedger) -> None:
    debit(ledger, "sv-1", 300)
    assert debit(ledger, "sv-1", 300, "void").outcome == "voided"
    assert debit(ledger, "sv-1", 300, "void").balance == 1000
    assert debit(ledger, "sv-1", 300).outcome == "voided"  # a late retry takes nothing
    assert ledger.card(CARD).balance == 1000  # type: ignore[union-attr]


def test_a_void_that_overtakes_its_debit_makes_the_debit_a_no_op(ledger: CardLedger) -> None:
    assert debit(ledger, "sv-1", 300, "void").outcome == "voided"
    assert debit(ledger, "sv-1", 300, "offline").outcome == "voided"
    assert ledger.card(CARD).balance == 1000  # type: ignore[union-attr]


def test_a_reference_of_another_card_or_device_is_declined_as_a_conflict(
    ledger: CardLedger,
) -> None:
    debit(ledger, "sv-1", 300)
    assert debit(ledger, "sv-1", 300, device="kiosk-9").reason == "conflict"
    assert debit(ledger, "sv-1", 200).reason == "conflict"
    assert ledger.card(CARD).balance == 700  # type: ignore[union-attr]


def test_top_ups_are_idempotent_and_keep_their_currency(ledger: CardLedger) -> None:
    assert ledger.top_up(CARD, 500, "EUR", "top-2").balance == 1500
    assert ledger.top_up(CARD, 500, "EUR", "top-2").balance == 1500
    with pytest.raises(CardLedgerError):
        ledger.top_up(CARD, 500, "CHF", "top-3")
    kinds = [e.kind for e in CardEntry.select().order_by(CardEntry.created_at).execute(ledger._db)]
    assert sorted(kinds) == ["issue", "top_up"]


def stored_value_sale(hub_db: Database, seq: int, reference: str, total: int) -> None:
    """kiosk-1's sale `seq`, paid by the stored-value debit `reference`, reaches the hub."""
    document = json.loads(sale_document("kiosk-1", seq, total=total))
    document["tenders"] = [{"kind": "stored_value", "amount": total, "reference": reference}]
    envelope = SaleEnvelope(
        seq=seq,
        sale_id=sale_id_of("kiosk-1", seq),
        document=msgspec.Raw(json.dumps(document).encode()),
    )
    ingest = SalesIngest(hub_db, on_stored=LoyaltyOnSales(hub_db))
    ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope]))


@pytest.mark.parametrize("debit_first", [True, False])
def test_a_sale_paid_by_card_earns_its_store_points_once_whichever_arrives_first(
    ledger: CardLedger, hub_db: Database, debit_first: bool
) -> None:
    assign_device(hub_db, "kiosk-1", "berlin")
    set_rule(hub_db, "berlin", points=1, unit=100)  # a point per full euro
    if debit_first:
        debit(ledger, "sv-1", 750, "offline")
    stored_value_sale(hub_db, 1, "sv-1", 750)
    if not debit_first:
        assert ledger.card(CARD).points == 0  # type: ignore[union-attr]
        debit(ledger, "sv-1", 750, "offline")
    stored_value_sale(hub_db, 1, "sv-1", 750)  # a resend earns nothing more
    debit(ledger, "sv-1", 750, "offline")
    assert ledger.card(CARD).points == 7  # type: ignore[union-attr]
    [award] = LoyaltyAward.select().execute(hub_db)
    assert (award.sale_id, award.points) == (sale_id_of("kiosk-1", 1), 7)


def test_a_voided_debit_earns_nothing(ledger: CardLedger, hub_db: Database) -> None:
    assign_device(hub_db, "kiosk-1", "berlin")
    set_rule(hub_db, "berlin", points=2, unit=100)
    debit(ledger, "sv-1", 500)
    debit(ledger, "sv-1", 500, "void")
    stored_value_sale(hub_db, 1, "sv-1", 500)
    assert ledger.card(CARD).points == 0  # type: ignore[union-attr]


def test_a_store_without_a_rule_earns_nothing(ledger: CardLedger, hub_db: Database) -> None:
    debit(ledger, "sv-1", 500)
    stored_value_sale(hub_db, 1, "sv-1", 500)
    assert ledger.card(CARD).points == 0  # type: ignore[union-attr]
