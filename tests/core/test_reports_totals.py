"""Totals add up, whatever the shift held: tenders, tax classes, refunds, voids and rounding.

sum of sales - refunds - voids = the Z's net = the tax lines' gross, and the tender lines
add up to the net plus the cash rounding; grand totals carry over from Z to Z.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from appliance.core.cash_rounding import cash_due
from appliance.core.reports import DrawerTally, TillReport, build_report
from appliance.core.sale import Sale, SaleDraft, draft_refund, draft_sale, draft_void, refund_total
from appliance.core.shift import CashMovement, Shift
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender, TenderKind
from tests.core.test_sale import POLICIES, carts

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


Draw = Callable[[st.SearchStrategy[Any]], Any]


def pay(draw: Draw, total: int, increment: int) -> list[Tender]:
    """Random tenders that settle `total` (negative: paid back), cash rounded."""
    if total == 0:
        return []
    sign = 1 if total > 0 else -1
    mix = draw(st.sampled_from(["card", "cash", "stored_value", "split", "cash_split"]))
    if mix in ("split", "cash_split") and abs(total) >= 2:
        first = sign * draw(st.integers(1, abs(total) - 1))
        other: TenderKind = "card"
        if mix == "cash_split":
            other = draw(st.sampled_from(["card", "stored_value"]))
        if mix == "split":
            return [Tender("card", first), Tender("stored_value", total - first)]
        due = cash_due(total - first, increment)
        if due != 0 and (due > 0) == (total > 0):
            extra = draw(st.integers(0, 5000)) if sign > 0 else 0
            cash = Tender("cash", due, tendered=due + extra if extra else 0)
            return [Tender(other, first), cash]
    if mix == "cash":
        due = cash_due(total, increment)
        if due != 0 and (due > 0) == (total > 0):
            extra = draw(st.integers(0, 5000)) if sign > 0 else 0
            return [Tender("cash", due, tendered=due + extra if extra else 0)]
    kind: TenderKind = "stored_value" if mix == "stored_value" else "card"
    return [Tender(kind, total)]


@st.composite
def shift_documents(draw: st.DrawFn) -> tuple[list[Sale], int]:
    """Sales, refunds and voids as a till would commit them, sealed in order."""
    policy: TaxPolicy = draw(st.sampled_from(POLICIES))
    increment = draw(st.sampled_from([0, 5, 10]))
    documents: list[Sale] = []
    refunded: dict[str, dict[int, int]] = {}
    voided: set[str] = set()

    def seal(draft: SaleDraft) -> Sale:
        sale = draft.seal(len(documents) + 1, f"T-{len(documents) + 1:06d}")
        documents.append(sale)
        return sale

    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["sale", "sale", "refund", "void"]))
        open_sales = [d for d in documents if d.kind == "sale" and d.id not in voided]
        if action == "refund" and open_sales:
            original = draw(st.sampled_from(open_sales))
            already = refunded.setdefault(original.id, {})
            left = {
                line.line_no: line.quantity - already.get(line.line_no, 0)
                for line in original.lines
            }
            choices = [n for n, q in left.items() if q > 0]
            if not choices:
                continue
            chosen = draw(st.lists(st.sampled_from(choices), min_size=1, unique=True))
            by_no = {line.line_no: line for line in original.lines}
            pieces = {
                n: left[n] if by_no[n].measure != "each" else draw(st.integers(1, left[n]))
                for n in chosen
            }
            gross = refund_total(original, pieces, already_refunded=already)
            seal(
                draft_refund(
                    original,
                    pieces,
                    pay(draw, gross, increment),
                    already_refunded=already,
                    device_id="T1",
                    now=NOW,
                    staff="ann",
                    cash_rounding=increment,
                )
            )
            for n, q in pieces.items():
                already[n] = already.get(n, 0) + q
        elif action == "void" and (candidates := [s for s in open_sales if s.id not in refunded]):
            original = draw(st.sampled_from(candidates))
            seal(draft_void(original, device_id="T1", now=NOW, staff="ann", reason="x"))
            voided.add(original.id)
        else:
            cart = draw(carts())
            total = cart.totals(policy).total
            seal(
                draft_sale(
                    cart,
                    policy,
                    pay(draw, total, increment),
                    device_id="T1",
                    now=NOW,
                    cash_rounding=increment,
                )
            )
    return documents, increment


def shift(after: int = 0, float_total: int = 0) -> Shift:
    return Shift("s", 1, "T1", "ann", "EUR", NOW, {}, float_total, after)


def report_of(documents: list[Sale], previous: int = 0, float_total: int = 0) -> TillReport:
    return build_report(
        "z",
        1,
        device="T1",
        shift=shift(float_total=float_total),
        staff="ann",
        made_at=NOW,
        documents=documents,
        movements=(),
        drawer=DrawerTally(),
        previous_grand_total=previous,
    )


@settings(max_examples=200, deadline=None)
@given(shift_documents(), st.integers(0, 100_000))
def test_sales_less_refunds_and_voids_are_the_z_and_its_tender_lines(
    made: tuple[list[Sale], int], float_total: int
) -> None:
    documents, increment = made
    z = report_of(documents, float_total=float_total)
    sales = sum(d.total for d in documents if d.kind == "sale")
    refunds = -sum(d.total for d in documents if d.kind == "refund")
    voids = -sum(d.total for d in documents if d.kind == "void")
    rounding = sum(d.rounding for d in documents)
    tender_lines = sum(t.amount for d in documents for t in d.tenders)
    event(f"kinds: {'/'.join(sorted({d.kind for d in documents}))}")
    event(f"rounded: {any(d.rounding for d in documents)}")

    assert (z.sales_gross, z.refunds_total, z.voids_total) == (sales, refunds, voids)
    assert z.net == sales - refunds - voids == sum(t.gross for t in z.taxes)
    assert sum(t.net + t.tax for t in z.taxes) == z.net
    assert z.rounding == rounding
    assert z.tenders_total == tender_lines == z.net + z.rounding
    cash = sum(t.amount for d in documents for t in d.tenders if t.kind == "cash")
    assert z.expected_cash == float_total + cash
    assert z.grand_total == z.net
    if increment > 1:  # every cash amount is a multiple of the increment
        assert all(
            t.amount % increment == 0 for d in documents for t in d.tenders if t.kind == "cash"
        )
    # A voided sale is cancelled exactly: it and its void add nothing.
    voided = {d.references for d in documents if d.kind == "void"}
    rest = [d for d in documents if d.kind != "void" and d.id not in voided]
    assert report_of(rest).net == z.net
    assert TillReport.from_dict(z.to_dict()) == z


@settings(max_examples=60, deadline=None)
@given(shift_documents(), st.data())
def test_grand_totals_carry_over_from_z_to_z(
    made: tuple[list[Sale], int], data: st.DataObject
) -> None:
    documents, _ = made
    cut = data.draw(st.integers(0, len(documents)))
    first = report_of(documents[:cut], previous=1000)
    second = report_of(documents[cut:], previous=first.grand_total)
    whole = report_of(documents, previous=1000)
    assert second.grand_total == whole.grand_total == 1000 + first.net + second.net
    assert first.tenders_total + second.tenders_total == whole.tenders_total


def test_cash_moves_and_the_float_make_the_expected_cash() -> None:
    moves = [
        CashMovement("m1", "s", "in", 500, "change", "ann", NOW),
        CashMovement("m2", "s", "out", 200, "bank", "ann", NOW),
    ]
    z = build_report(
        "x",
        1,
        device="T1",
        shift=shift(float_total=1000),
        staff="ann",
        made_at=NOW,
        documents=(),
        movements=moves,
        drawer=DrawerTally(2, 3, 1),
        previous_grand_total=0,
    )
    assert (z.cash_in, z.cash_out, z.expected_cash) == (500, 200, 1300)
    assert (z.drawer_with_sale, z.drawer_without_sale, z.drawer_unexplained) == (2, 3, 1)
    assert (z.counted_cash, z.difference) == (None, None)
