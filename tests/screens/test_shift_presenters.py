"""The shift screens' logic without a window: the cash count and a report's rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from appliance.core.reports import ReportTax, TillReport
from appliance.screens.i18n import Translator
from appliance.screens.presenters.cash_count import MAX_PIECES, CashCounter
from appliance.screens.staff.report_presenter import rate_text, report_rows, report_title

EUR = (50000, 20000, 10000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5, 2, 1)


@pytest.fixture
def tr() -> Iterator[Translator]:
    """A translator showing English in a German store (money as 1,00 €)."""
    translator = Translator()
    translator.switch("en", "de_DE")
    yield translator


def test_a_count_adds_pieces_by_denomination(tr: Translator) -> None:
    counter = CashCounter(tr, "EUR", EUR)
    counter.clear()
    assert counter.selected == 50000  # the keypad starts on the largest note
    counter.select(2000)
    counter.type("3")
    counter.more(200)
    counter.more(200)
    counter.less(200)
    counter.set(5, 4)
    assert counter.counted() == {2000: 3, 200: 1, 5: 4}
    assert counter.total == 3 * 2000 + 200 + 4 * 5
    assert counter.total_text == tr.money(6220, "EUR")
    row = next(r for r in counter.rows if r["denomination"] == 2000)
    assert row["count"] == "3" and row["subtotal"] == tr.money(6000, "EUR") and row["selected"]


def test_the_keypad_types_the_chosen_row_and_a_new_choice_starts_afresh(tr: Translator) -> None:
    counter = CashCounter(tr, "EUR", EUR)
    counter.clear()
    counter.select(100)
    counter.type("1")
    counter.type("12")
    assert counter.pieces(100) == 12
    counter.select_next()  # the keypad's Next: the next smaller coin
    assert counter.selected == 50 and counter.typed == ""
    counter.type("")  # the keypad echoing its reset changes no count
    assert counter.pieces(100) == 12 and counter.pieces(50) == 0
    counter.type("7")
    counter.type("")  # back to nothing typed: none of this coin
    assert counter.pieces(50) == 0
    counter.select(1)
    counter.select_next()
    assert counter.selected == 50000  # after the smallest coin, round to the largest note


def test_a_count_stays_within_bounds(tr: Translator) -> None:
    counter = CashCounter(tr, "EUR", EUR)
    counter.less(500)
    assert counter.pieces(500) == 0
    counter.set(500, 10**6)
    assert counter.pieces(500) == MAX_PIECES
    with pytest.raises(ValueError):
        counter.set(300, 1)
    counter.clear()
    assert counter.counted() == {} and counter.total == 0


def test_notes_read_as_on_the_note_and_coins_with_cents(tr: Translator) -> None:
    counter = CashCounter(tr, "EUR", EUR)
    labels = {r["denomination"]: r["label"] for r in counter.rows}
    assert labels[2000] == "20\xa0€"  # as on the note: no cents
    assert labels[50] == tr.money(50, "EUR")


def report(**changes: object) -> TillReport:
    """A Z report with a difference, two tax rates and every kind of figure."""
    values: dict[str, object] = {
        "kind": "z",
        "number": 4,
        "device": "sim-0001",
        "shift_id": "s-1",
        "shift_number": 7,
        "staff": "anna",
        "currency": "EUR",
        "opened_at": datetime(2026, 12, 6, 8, 0, tzinfo=UTC),
        "made_at": datetime(2026, 12, 6, 18, 0, tzinfo=UTC),
        "tenders": {"cash": 4000, "card": 2280},
        "taxes": (ReportTax(1900, 2000, 380, 2380), ReportTax(700, 3645, 255, 3900)),
        "sales_count": 3,
        "sales_gross": 7000,
        "refunds_count": 1,
        "refunds_total": 500,
        "voids_count": 1,
        "voids_total": 220,
        "discounts": 100,
        "rounding": 0,
        "drawer_with_sale": 2,
        "drawer_without_sale": 3,
        "drawer_unexplained": 1,
        "cash_in": 1000,
        "cash_out": 2000,
        "float_total": 10000,
        "expected_cash": 13000,
        "counted_cash": 12300,
        "difference": -700,
        "grand_total": 99280,
        "signed_off_by": "sam",
    }
    values.update(changes)
    return TillReport(**values)  # type: ignore[arg-type]


def test_a_z_report_shows_every_figure(tr: Translator) -> None:
    rows = report_rows(tr, report())
    shown = {r["label"]: r["value"] for r in rows if not r["heading"]}
    money = lambda minor: tr.money(minor, "EUR")  # noqa: E731
    assert shown["Cash"] == money(4000) and shown["Card"] == money(2280)
    assert shown[f"19 %: net {money(2000)}, tax {money(380)}"] == money(2380)
    assert shown[f"7 %: net {money(3645)}, tax {money(255)}"] == money(3900)
    assert shown["3 sales"] == money(7000)
    assert shown["1 refund"] == money(500) and shown["1 void"] == money(220)
    assert shown["Discounts"] == money(100) and shown["Cash rounding"] == money(0)
    assert shown["With a sale"] == "2" and shown["Without a sale"] == "3"
    assert shown["With no sale or reason"] == "1"
    assert shown["Cash in"] == money(1000) and shown["Cash out"] == money(2000)
    assert shown["Expected in the drawer"] == money(13000)
    assert shown["Counted"] == money(12300) and shown["Difference"] == money(-700)
    assert shown["Signed off by"] == "sam"
    assert shown["Carried over, with this period"] == money(99280)
    flagged = {r["label"] for r in rows if r["state"] == "degraded"}
    assert flagged == {"With no sale or reason", "Difference"}
    assert report_title(tr, report()) == "Z report 4"


def test_an_x_report_has_no_count(tr: Translator) -> None:
    x = report(kind="x", number=2, counted_cash=None, difference=None, signed_off_by="")
    labels = [r["label"] for r in report_rows(tr, x)]
    assert "Counted" not in labels and "Difference" not in labels
    assert report_title(tr, x) == "X report 2 of shift 7"


def test_tax_rates_read_as_percentages() -> None:
    assert rate_text(1900) == "19 %"
    assert rate_text(770) == "7.7 %"
    assert rate_text(0) == "0 %"
