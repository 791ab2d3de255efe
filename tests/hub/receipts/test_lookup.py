"""find_receipt with the time given: how long a link works and how long a sale is waited for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from peewee import Database

from appliance.core.ids import new_receipt_token
from hub.receipts.lookup import (
    CLOCK_SLACK,
    FirstSeen,
    Found,
    Pending,
    ReceiptRules,
    find_receipt,
)
from tests.hub.receipts.shop import Kiosk, send

SOLD = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RULES = ReceiptRules(keep=timedelta(days=7), wait=timedelta(minutes=10))


def test_a_link_works_for_the_configured_days_and_not_a_second_more(
    receipt_db: Database, kiosk: Kiosk
) -> None:
    sale = kiosk.sell(SOLD)
    send(receipt_db, sale)
    end = SOLD + timedelta(days=7)

    before = find_receipt(receipt_db, sale.receipt_token, end - timedelta(seconds=1), RULES)

    assert isinstance(before, Found) and before.document.id == sale.id
    assert before.expires_at == end
    assert find_receipt(receipt_db, sale.receipt_token, end, RULES) is None


def test_a_missing_sale_is_waited_for_a_bounded_time_then_unknown(receipt_db: Database) -> None:
    token = new_receipt_token(SOLD)

    def at(delta: timedelta) -> object:
        return find_receipt(receipt_db, token, SOLD + delta, RULES)

    assert at(-CLOCK_SLACK - timedelta(seconds=1)) is None  # from too far in the future
    assert isinstance(at(-CLOCK_SLACK), Pending)
    waiting = at(timedelta(minutes=9, seconds=59))
    assert isinstance(waiting, Pending) and waiting.until == SOLD + timedelta(minutes=10)
    assert at(timedelta(minutes=10)) is None


def test_a_token_of_the_wrong_shape_is_not_looked_up(receipt_db: Database) -> None:
    token = new_receipt_token(SOLD)
    for wrong in ("", token[:-1], token + "A", token.upper(), "g" + token[1:], token[:-1] + "/"):
        assert find_receipt(receipt_db, wrong, SOLD, RULES) is None, wrong


def test_a_token_of_unknown_time_is_waited_for_from_when_it_was_first_asked_for(
    receipt_db: Database,
) -> None:
    token = new_receipt_token(None)  # the device's clock was not verified
    seen = FirstSeen()
    first = SOLD + timedelta(days=400)

    def at(delta: timedelta) -> object:
        return find_receipt(receipt_db, token, first + delta, RULES, seen)

    waiting = at(timedelta(0))
    assert isinstance(waiting, Pending) and waiting.until == first + timedelta(minutes=10)
    assert at(timedelta(minutes=9, seconds=59)) == waiting
    assert at(timedelta(minutes=10)) is None
    assert find_receipt(receipt_db, token, first, RULES) is None  # nothing remembers it


def test_tokens_of_unknown_time_are_remembered_within_bounds() -> None:
    seen = FirstSeen(limit=3, keep=timedelta(hours=1))

    assert [seen.first(key, SOLD) for key in "abcd"] == [SOLD] * 4
    later = SOLD + timedelta(minutes=1)
    assert seen.first("a", later) == later  # pushed out by d: asked for anew
    assert seen.first("d", later) == SOLD
    assert seen.first("d", SOLD + timedelta(hours=1)) == SOLD + timedelta(hours=1)
