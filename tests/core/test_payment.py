"""Payment requests and results: positive amounts, masked card data only."""

from __future__ import annotations

import pytest

from appliance.core.payment import PaymentRequest, PaymentResult


def test_a_request_needs_a_positive_amount() -> None:
    with pytest.raises(ValueError, match="positive"):
        PaymentRequest(0, "EUR", "sale-1/1")
    assert PaymentRequest(1, "EUR", "sale-1/1").allowed == ("card", "contactless", "wallet")


def test_a_result_refuses_a_full_card_number() -> None:
    with pytest.raises(ValueError, match="last 4"):
        PaymentResult("approved", "sale-1/1", masked_card="4242424242424242")
    assert PaymentResult("approved", "sale-1/1", masked_card="**** 4242").masked_card.endswith(
        "4242"
    )
