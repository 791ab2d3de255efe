"""A cart being paid (on the writer thread) is held: no change lands in it, no paid line returns."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from appliance.core.cart import Cart
from appliance.core.checkout import Checkout
from appliance.core.events import EventBus, SaleCommitted
from appliance.core.sale import Sale, SaleDraft
from appliance.core.tender import Tender
from appliance.errors import CartError, DomainError, StoreError
from tests.core.test_checkout_resume import POLICY, Catalog, Clock

WAIT = 10.0


class GatedRecorder:
    """Seals drafts in order; each commit waits for `release` (a slow fsync)."""

    def __init__(self, *, pause: float = 0.0, gated: bool = False) -> None:
        self.sales: list[Sale] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail = False
        self._pause = pause
        self._gated = gated

    def commit(self, draft: SaleDraft) -> Sale:
        """Wait as the disk would, then seal (or refuse) the draft."""
        self.entered.set()
        if self._gated:
            assert self.release.wait(WAIT)
        time.sleep(self._pause)
        if self.fail:
            raise StoreError("disk full")
        n = len(self.sales) + 1
        sale = draft.seal(n, f"T-{n:06d}")
        self.sales.append(sale)
        return sale


def checkout(recorder: GatedRecorder, bus: EventBus | None = None) -> Checkout:
    """A till over the two-product catalog."""
    return Checkout(
        Catalog(),
        recorder,
        POLICY,
        currency="EUR",
        device_id="T1",
        clock=Clock(),
        bus=bus or EventBus(),
    )


def pay_on_a_thread(till: Checkout) -> tuple[threading.Thread, list[Sale | BaseException]]:
    """Start paying the cart exactly on another thread, as StoreWrites does."""
    outcome: list[Sale | BaseException] = []
    tenders = [Tender("card", till.totals().total)]

    def pay() -> None:
        try:
            outcome.append(till.pay(tenders))
        except BaseException as err:
            outcome.append(err)

    writer = threading.Thread(target=pay, name="store-writes-test")
    writer.start()
    return writer, outcome


def test_every_change_is_refused_while_the_cart_is_being_paid() -> None:
    recorder = GatedRecorder(gated=True)
    till = checkout(recorder)
    till.scan("COLA")
    writer, outcome = pay_on_a_thread(till)
    assert recorder.entered.wait(WAIT)
    assert till.paying
    attempts = [
        lambda: till.scan("SOAP"),
        lambda: till.set_quantity(0, 3),
        lambda: till.remove(0),
        lambda: till.discount_all(None),
        till.cancel,
        lambda: till.resume(Cart("EUR")),
        lambda: till.pay([Tender("card", 250)]),
    ]
    for attempt in attempts:
        with pytest.raises(CartError, match="being paid"):
            attempt()
    assert [line.sku for line in till.cart.lines] == ["COLA"], "the cart on its way out is intact"
    recorder.release.set()
    writer.join(WAIT)
    assert isinstance(outcome[0], Sale)
    assert not till.paying and till.cart.is_empty
    till.scan("SOAP")  # the till takes changes again
    assert [line.sku for line in till.cart.lines] == ["SOAP"]


def test_a_refused_commit_hands_the_cart_back_unchanged() -> None:
    recorder = GatedRecorder()
    recorder.fail = True
    till = checkout(recorder)
    till.scan("COLA")
    writer, outcome = pay_on_a_thread(till)
    writer.join(WAIT)
    assert isinstance(outcome[0], StoreError)
    assert not till.paying
    assert [line.sku for line in till.cart.lines] == ["COLA"]
    till.scan("SOAP")
    assert len(till.cart.lines) == 2


def test_scans_racing_payments_are_each_sold_once_or_refused() -> None:
    # Without the hold, a scan landing during the commit vanished with the sold cart (or a
    # sold line came back): the counts below would not add up.
    recorder = GatedRecorder(pause=0.0005)
    till = checkout(recorder)
    accepted = 0
    done = threading.Event()

    def pay_whenever_there_is_a_cart() -> None:
        while not done.is_set() or not till.cart.is_empty:
            total = till.totals().total
            if total == 0:
                time.sleep(0.0001)
                continue
            # DomainError: the cart changed since the total was read; read it again.
            with contextlib.suppress(DomainError):
                till.pay([Tender("card", total)])

    writer = threading.Thread(target=pay_whenever_there_is_a_cart, name="store-writes-test")
    writer.start()
    try:
        for _ in range(400):
            try:
                till.scan("SOAP")
                accepted += 1
            except CartError:
                pass  # held: the cashier scans again
    finally:
        done.set()
        writer.join(WAIT)
    sold = sum(line.quantity for sale in recorder.sales for line in sale.lines)
    assert sold + sum(line.quantity for line in till.cart.lines) == accepted
    assert recorder.sales, "some payments ran while scanning"


def test_pay_announces_the_sale_it_stored() -> None:
    bus = EventBus()
    recorder = GatedRecorder()
    till = checkout(recorder, bus)
    heard: list[SaleCommitted] = []
    bus.subscribe(SaleCommitted, heard.append)
    till.scan("COLA")
    sale = till.pay([Tender("card", till.totals().total)])
    bus.drain()
    assert [event.sale for event in heard] == [sale]
    assert heard[0] == SaleCommitted.of(sale)
    assert (heard[0].sale_id, heard[0].receipt_number) == (sale.id, sale.receipt_number)
