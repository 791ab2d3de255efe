"""Any series of partial refunds gives back exactly the sale's total and tax, never a cent more."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.cart import Cart
from appliance.core.sale import draft_refund
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from tests.core.test_sale import POLICIES, carts, expected_refund_gross, sell

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@settings(max_examples=150, deadline=None)
@given(carts(), st.sampled_from(POLICIES), st.data())
def test_refunding_everything_in_random_pieces_returns_exactly_the_sale(
    cart: Cart, policy: TaxPolicy, data: st.DataObject
) -> None:
    original = sell(cart, policy)
    left = {line.line_no: line.quantity for line in original.lines}
    whole = {line.line_no for line in original.lines if line.measure != "each"}
    already: dict[int, int] = {}
    total_back = 0
    tax_back: dict[str, int] = {}
    while any(left.values()):
        open_lines = sorted(n for n, q in left.items() if q)
        chosen = data.draw(st.lists(st.sampled_from(open_lines), min_size=1, unique=True))
        pieces = {n: left[n] if n in whole else data.draw(st.integers(1, left[n])) for n in chosen}
        gross = expected_refund_gross(original, pieces, already)
        draft = draft_refund(
            original,
            pieces,
            [Tender("card", gross)] if gross else [],
            already_refunded=already,
            device_id="k1",
            now=NOW,
            staff="Ana",
        )
        total_back += draft.total
        for t in draft.taxes:
            tax_back[t.tax_class] = tax_back.get(t.tax_class, 0) + t.tax
        for n, q in pieces.items():
            already[n] = already.get(n, 0) + q
            left[n] -= q
    assert total_back == -original.total
    assert tax_back == {t.tax_class: -t.tax for t in original.taxes}
