"""Card recovery against the real ZVT adapter and the emulator: each rule of
service/card_recovery.py, with the terminal's book and the journal compared after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.core.cart import Cart
from appliance.core.catalog import find_product
from appliance.core.payment import PaymentRequest, PaymentResult, PaymentTerminal
from appliance.drivers.sim.zvt_script import Step
from appliance.drivers.sim.zvt_terminal import ZvtEmulator
from appliance.service.assembly import Appliance
from appliance.service.card_recovery import CardRecovery, Recovered
from appliance.service.demo import seed_demo_catalog
from appliance.settings import simulated_settings
from appliance.store.payment_attempts import PaymentAttempts

COFFEE = "4006381333931"


class Bench:
    """A simulated appliance, its journal, its ZVT adapter and the emulator it pays at."""

    def __init__(self, app: Appliance) -> None:
        self.app = app
        self.journal: PaymentAttempts = app.stores.payments
        assert app.devices is not None and app.lab is not None and app.lab.terminal is not None
        terminal = app.devices.terminal
        assert terminal is not None
        self.terminal: PaymentTerminal = terminal
        self.emulator: ZvtEmulator = app.lab.terminal
        self.policy = app.settings.store.tax_policy()

    def cart(self, coffees: int = 1) -> Cart:
        """A cart of `coffees` ground coffees."""
        return Cart("EUR").add(find_product(self.app.lookup, COFFEE), coffees)

    def begin(
        self, cart: Cart, amount: int | None = None, reference: str = "till-1-a"
    ) -> PaymentRequest:
        """Journal a pending attempt for `cart` (or for `amount` of it)."""
        total = cart.totals(self.policy).total
        request = PaymentRequest(amount or total, "EUR", reference)
        self.journal.begin(request, cart)
        return request

    def recover(self) -> list[Recovered]:
        """One recovery run, as the card gate starts it."""
        recovery = CardRecovery(
            self.journal,
            self.terminal,
            self.app.checkout.complete,
            lambda cart: cart.totals(self.policy).total,
        )
        return recovery.run()

    def state(self, reference: str) -> str:
        """The journal's state of one attempt."""
        attempt = self.journal.get(reference)
        assert attempt is not None
        return attempt.state

    def book(self) -> list[tuple[str, int, str]]:
        """The emulated terminal's transactions: kind, amount, state."""
        return [(b.kind, b.amount, b.state) for b in self.emulator.book]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """The demo store with its simulated devices; card recovery at start has finished."""
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    seed_demo_catalog(app.catalog, settings.store)
    app.lookup.refresh()
    app.open_devices(simulate=True)
    try:
        assert app.card_gate is not None and app.card_gate.wait(30)
        yield Bench(app)
    finally:
        app.close_devices()
        app.close()


def test_a_pending_attempt_the_terminal_never_saw_is_not_charged(bench: Bench) -> None:
    request = bench.begin(bench.cart())

    [found] = bench.recover()

    assert (found.reference, found.resolution) == (request.merchant_reference, "not_charged")
    assert bench.state(request.merchant_reference) == "declined"
    assert bench.book() == [] and bench.app.ledger.count() == 0


def test_a_charge_the_till_never_acknowledged_is_reversed_by_its_receipt_number(
    bench: Bench,
) -> None:
    cart = bench.cart()
    request = bench.begin(cart)
    bench.emulator.script(Step(drop="at_status"))  # booked; the link drops with the answer
    assert bench.terminal.pay(request).outcome == "unknown"  # nothing reached the journal

    [found] = bench.recover()

    assert found.resolution == "reversed"
    assert bench.state(request.merchant_reference) == "reversed"
    amount = request.amount
    assert bench.book() == [("payment", amount, "reversed"), ("reversal", amount, "approved")]
    assert bench.journal.open_attempts() == []  # the reversal's own row is closed too
    assert bench.app.ledger.count() == 0


def test_an_approval_that_stands_at_the_terminal_completes_its_sale_once(bench: Bench) -> None:
    cart = bench.cart(2)
    request = bench.begin(cart)
    bench.emulator.script(Step(drop="after_ack"))  # acknowledged; the Completion never came

    def record(answer: PaymentResult) -> None:
        bench.journal.answered(request, answer)

    assert bench.terminal.pay(request, record=record).outcome == "unknown"
    assert bench.state(request.merchant_reference) == "approved"

    [found] = bench.recover()

    assert found.resolution == "completed" and found.sale is not None
    sale = found.sale
    assert [(t.kind, t.amount, t.reference) for t in sale.tenders] == [
        ("card", request.amount, request.merchant_reference)
    ]
    attempt = bench.journal.get(request.merchant_reference)
    assert attempt is not None and (attempt.state, attempt.sale_id) == ("settled", sale.id)
    assert bench.book() == [("payment", request.amount, "approved")]
    assert bench.recover() == []  # nothing left: a second run sells nothing twice
    assert bench.app.ledger.count() == 1


def test_an_approval_the_terminal_reversed_itself_becomes_no_sale(bench: Bench) -> None:
    cart = bench.cart()
    request = bench.begin(cart)

    def record_then_die(answer: PaymentResult) -> None:
        bench.journal.answered(request, answer)  # journalled ...
        raise OSError("power cut")  # ... and the till is gone before its ack

    assert bench.terminal.pay(request, record=record_then_die).outcome == "unknown"
    assert bench.state(request.merchant_reference) == "approved"
    assert bench.emulator.wait_idle(10)

    [found] = bench.recover()

    assert found.resolution == "reversed"
    assert bench.state(request.merchant_reference) == "reversed"
    assert bench.book() == [
        ("payment", request.amount, "reversed"),
        ("reversal", request.amount, "approved"),
    ]
    assert bench.app.ledger.count() == 0


def test_an_approved_part_of_a_sale_never_paid_in_full_is_reversed(bench: Bench) -> None:
    cart = bench.cart(3)
    request = bench.begin(cart, amount=500)  # a split's card part; the rest never came

    def record(answer: PaymentResult) -> None:
        bench.journal.answered(request, answer)

    assert bench.terminal.pay(request, record=record).outcome == "approved"

    [found] = bench.recover()

    assert (found.resolution, found.detail) == ("reversed", "the rest of the sale was never paid")
    assert bench.book() == [("payment", 500, "reversed"), ("reversal", 500, "approved")]
    assert bench.app.ledger.count() == 0


def test_a_terminal_that_cannot_be_asked_leaves_the_attempt_to_staff(bench: Bench) -> None:
    request = bench.begin(bench.cart())
    bench.emulator.close()

    [found] = bench.recover()

    assert found.resolution == "needs_staff"
    assert "cannot be asked" in found.detail
    assert bench.state(request.merchant_reference) == "pending"
