"""Tests for tenders and check_settles: split payments, change, card masking, refunds."""

from __future__ import annotations

import pytest

from appliance.core.tender import Tender, check_settles
from appliance.errors import TenderError


def test_cash_for_the_amount_due_gives_the_rest_as_change() -> None:
    cash = Tender.cash(2000, due=1234)
    assert (cash.kind, cash.amount, cash.tendered, cash.change) == ("cash", 1234, 2000, 766)
    check_settles([cash], 1234)


def test_exact_cash_gives_no_change() -> None:
    cash = Tender.cash(1234, due=1234)
    assert cash.change == 0
    check_settles([cash], 1234)


def test_a_split_tender_of_card_and_cash_settles_with_change() -> None:
    card = Tender("card", 1000, card_mask="**** 4242")
    cash = Tender.cash(2000, due=1500 - card.amount)
    assert (cash.amount, cash.change) == (500, 1500)
    check_settles([card, cash], 1500)


def test_cash_below_what_is_due_settles_only_that_much() -> None:
    cash = Tender.cash(500, due=1500)
    assert (cash.amount, cash.change) == (500, 0)
    with pytest.raises(TenderError, match="pay 500 of 1500"):
        check_settles([cash], 1500)
    check_settles([cash, Tender("card", 1000)], 1500)


def test_paying_more_by_card_than_is_due_is_refused() -> None:
    with pytest.raises(TenderError, match="pay 2000 of 1500"):
        check_settles([Tender("card", 2000)], 1500)
    with pytest.raises(TenderError, match="pay 1600 of 1500"):
        check_settles([Tender("card", 1000), Tender("stored_value", 600)], 1500)


def test_a_card_cannot_be_handed_over_in_excess_for_change() -> None:
    with pytest.raises(TenderError, match="only cash"):
        Tender("card", 1000, tendered=2000)


def test_cash_handed_over_cannot_be_less_than_what_it_settles() -> None:
    with pytest.raises(TenderError, match="less than"):
        Tender("cash", 1000, tendered=500)


@pytest.mark.parametrize("handed_over", [0, -100])
def test_cash_handed_over_must_be_positive(handed_over: int) -> None:
    with pytest.raises(TenderError, match="positive"):
        Tender.cash(handed_over, due=1000)


def test_paying_too_little_is_refused() -> None:
    with pytest.raises(TenderError, match="pay 1000 of 1500"):
        check_settles([Tender("card", 1000)], 1500)


def test_no_tender_for_something_due_is_refused() -> None:
    with pytest.raises(TenderError, match="no payment"):
        check_settles([], 1500)


def test_a_zero_total_needs_no_tender() -> None:
    check_settles([], 0)


def test_a_zero_tender_is_refused() -> None:
    with pytest.raises(TenderError, match="does not fit"):
        check_settles([Tender("card", 1500), Tender("cash", 0)], 1500)


@pytest.mark.parametrize("mask", ["**** 4242", "4242", "", "VISA ****4242"])
def test_a_masked_card_number_is_kept(mask: str) -> None:
    assert Tender("card", 100, card_mask=mask).card_mask == mask


@pytest.mark.parametrize(
    "mask", ["4111111111111111", "4111 1111 1111 1111", "411111******1111", "12345"]
)
def test_a_card_number_with_more_than_four_digits_is_refused(mask: str) -> None:
    with pytest.raises(TenderError, match="masked"):
        Tender("card", 100, card_mask=mask)


def test_an_unknown_tender_kind_is_refused() -> None:
    with pytest.raises(TenderError, match="cheque"):
        Tender("cheque", 100)  # type: ignore[arg-type]


def test_negative_tenders_settle_a_refund() -> None:
    check_settles([Tender("card", -700, card_mask="**** 4242"), Tender("cash", -300)], -1000)


def test_a_positive_tender_does_not_fit_a_refund_and_a_negative_one_not_a_sale() -> None:
    with pytest.raises(TenderError, match="does not fit"):
        check_settles([Tender("cash", -1500), Tender("card", 500)], -1000)
    with pytest.raises(TenderError, match="does not fit"):
        check_settles([Tender("card", 1500), Tender("cash", -500)], 1000)


def test_negated_pays_the_same_back_without_change() -> None:
    cash = Tender.cash(2000, due=1234)
    back = cash.negated()
    assert (back.kind, back.amount, back.tendered, back.change) == ("cash", -1234, 0, 0)
    card = Tender("card", 500, reference="T-1", card_mask="**** 4242").negated()
    assert card == Tender("card", -500, reference="T-1", card_mask="**** 4242")
    check_settles([back, card], -1734)
