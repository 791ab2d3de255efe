"""The headless till pays through the kiosk's path, over the real control socket: a silent
terminal holds up no other command, and staff settle an unknown outcome exactly once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from appliance.drivers.sim.control import control_socket_path, send
from appliance.service.assembly import Appliance
from appliance.service.card_gate import CHECKING
from appliance.service.demo import DEMO_CASHIER_BADGE, seed_demo_catalog, seed_demo_staff
from appliance.settings import simulated_settings
from appliance.store.payment_attempts import PaymentAttempt

COFFEE = "4006381333931"
CHOCOLATE = "7613289024044"
WINE = "8000320010149"  # 18+: the cart waits for a member of staff's ID check
WAIT_SECONDS = 10.0
PAY_SECONDS = 60.0  # how long a test's client waits for a payment's answer


def wait_until(done: Callable[[], object], what: str) -> None:
    """Poll `done()`; fail after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Pending:
    """A control request sent on its own thread; `answer` once it came back."""

    sock: Path
    request: dict[str, Any]
    answer: dict[str, Any] | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        self.answer = send(self.sock, self.request, timeout=PAY_SECONDS)

    def result(self) -> dict[str, Any]:
        """Wait for the answer."""
        self.thread.join(PAY_SECONDS)
        assert self.answer is not None, f"no answer to {self.request}"
        return self.answer


@dataclass
class Till:
    """A simulated headless appliance with its main loop running on a thread of its own."""

    app: Appliance
    sock: Path

    def ask(self, cmd: str, **fields: str) -> dict[str, Any]:
        """One control request, answered within the client's usual timeout."""
        return send(self.sock, {"cmd": cmd, **fields})

    def scan_into_cart(self, code: str) -> None:
        """Scan through the pty scanner and wait until the line is in the cart."""
        lines = len(self.app.checkout.cart.lines)
        assert self.ask("scan", code=code) == {"ok": True}
        wait_until(lambda: len(self.app.checkout.cart.lines) > lines, f"{code} in the cart")

    def attempts(self) -> list[PaymentAttempt]:
        """Card attempts nobody has settled, as the journal holds them."""
        return self.app.stores.payments.open_attempts()

    def in_doubt(self) -> PaymentAttempt:
        """A card payment left unknown: the link drops mid-payment and the terminal is gone."""
        emulator = self.app.lab.terminal if self.app.lab is not None else None
        assert emulator is not None
        assert self.ask("terminal", outcome="timeout")["ok"]
        self.scan_into_cart(COFFEE)
        pay = Pending(self.sock, {"cmd": "pay", "method": "card"})
        wait_until(lambda: (0x06, 0x01) in [a.command for a in emulator.received], "06 01 sent")
        emulator.close()  # the terminal is gone mid-payment: recovery cannot ask it either
        answer = pay.result()
        assert answer["ok"] is False and "unknown" in answer["error"], answer
        wait_until(lambda: self.gate_reason() != CHECKING, "recovery given up")
        [attempt] = self.attempts()
        assert attempt.state == "pending"
        return attempt

    def gate_reason(self) -> str:
        """Why card is off now ("" when it is offered)."""
        gate = self.app.card_gate
        assert gate is not None
        return gate.availability.reason


def _main_loop(app: Appliance, stop: threading.Event) -> None:
    while not stop.is_set():
        app.bus.wait(0.05)
        app.bus.drain()


@pytest.fixture
def till(tmp_path: Path) -> Iterator[Till]:
    """`appliance run --headless --simulate` in-process, its loop on a thread."""
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    seed_demo_catalog(app.catalog, settings.store)
    app.lookup.refresh()
    devices = app.open_devices(simulate=True)
    stop = threading.Event()
    loop = threading.Thread(target=_main_loop, args=(app, stop), name="test-main-loop")
    loop.start()
    try:
        wait_until(
            lambda: all(h.state == "ok" for h in devices.health() if h.device != "nfc"),
            "the simulated devices",
        )
        yield Till(app, control_socket_path(settings.database.path))
    finally:
        stop.set()
        loop.join()
        app.close_devices()
        app.bus.drain()
        app.close()


def test_a_payment_waiting_for_a_silent_terminal_holds_up_no_other_command(
    till: Till, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert till.ask("terminal", outcome="timeout")["ok"]
    till.scan_into_cart(COFFEE)

    pay = Pending(till.sock, {"cmd": "pay", "method": "card"})
    wait_until(lambda: [a.state for a in till.attempts()] == ["pending"], "the attempt journalled")

    # Each answered while the payment still waits; the scan reaches the till, which keeps
    # the cart as it is while the terminal has it, as the kiosk's payment screen does.
    assert till.ask("scan", code=CHOCOLATE) == {"ok": True}
    assert till.ask("paper-out") == {"ok": True}
    assert till.ask("pay", method="cash")["ok"] is False
    assert pay.answer is None and pay.thread.is_alive()
    wait_until(lambda: "a card payment is with the terminal" in caplog.text, "the scan refused")
    assert [line.sku for line in till.app.checkout.cart.lines] == ["COFFEE-250"]

    # The till's abort (06 B0) reaches the terminal, which ends the payment uncharged.
    assert till.ask("cancel-payment") == {"ok": True}
    answer = pay.result()
    assert answer["ok"] is False and "cancelled" in answer["error"]
    assert till.app.ledger.count() == 0
    assert till.attempts() == []


def test_a_link_dropped_before_the_terminal_charged_is_resolved_by_recovery_alone(
    till: Till,
) -> None:
    assert till.ask("terminal", outcome="drop-early")["ok"]
    till.scan_into_cart(COFFEE)

    answer = till.ask("pay", method="card")

    assert answer["ok"] is False and "unknown" in answer["error"], answer
    # Recovery asks the terminal (Status Enquiry, Repeat Receipt): nothing was booked.
    wait_until(lambda: till.attempts() == [] and till.gate_reason() == "", "recovery")
    paid = send(till.sock, {"cmd": "pay", "method": "card"}, timeout=PAY_SECONDS)
    assert paid["ok"] is True, paid
    emulator = till.app.lab.terminal if till.app.lab is not None else None
    assert emulator is not None
    assert [(e.kind, e.state) for e in emulator.book] == [("payment", "approved")]
    assert till.app.ledger.count() == 1


def test_settled_paid_an_unknown_payment_becomes_one_sale(till: Till) -> None:
    attempt = till.in_doubt()

    settled = till.ask("settle", settlement="paid")

    assert settled["ok"] is True and settled["settled"] == "paid", settled
    [sale] = till.app.ledger.since()
    assert settled["receipt"] == sale.receipt_number
    assert [(t.kind, t.amount, t.reference) for t in sale.tenders] == [
        ("card", attempt.amount, attempt.reference)
    ]
    assert till.attempts() == []
    closed = till.app.stores.payments.get(attempt.reference)
    assert closed is not None and (closed.state, closed.sale_id) == ("settled", sale.id)
    assert till.app.checkout.cart.is_empty
    # Settled once: neither a second "paid" nor a late "not paid" changes anything.
    for again in ("paid", "not-paid"):
        refused = till.ask("settle", settlement=again)
        assert refused["ok"] is False and "no card payment is in doubt" in refused["error"]
    assert till.app.ledger.count() == 1


def test_settled_not_paid_an_unknown_payment_keeps_the_cart_for_another_tender(
    till: Till,
) -> None:
    attempt = till.in_doubt()

    settled = till.ask("settle", settlement="not-paid", reference=attempt.reference)

    assert settled == {"ok": True, "settled": "not-paid"}
    assert till.app.ledger.count() == 0
    assert [line.sku for line in till.app.checkout.cart.lines] == ["COFFEE-250"]
    closed = till.app.stores.payments.get(attempt.reference)
    assert closed is not None and closed.state == "declined"
    paid = till.ask("pay", method="cash")
    assert paid["ok"] is True, paid
    [sale] = till.app.ledger.since()
    assert [t.kind for t in sale.tenders] == ["cash"]
    refused = till.ask("settle", settlement="paid", reference=attempt.reference)
    assert refused["ok"] is False and "not in doubt (declined)" in refused["error"]
    assert till.app.ledger.count() == 1


def test_a_new_card_payment_waits_until_the_one_in_doubt_is_settled(till: Till) -> None:
    till.in_doubt()

    refused = till.ask("pay", method="card")

    assert refused["ok"] is False and "in doubt" in refused["error"]
    assert till.gate_reason() == "an earlier card payment needs a member of staff"
    assert till.ask("settle", settlement="not-paid")["ok"] is True
    assert till.attempts() == []
    assert till.app.ledger.count() == 0


def test_a_link_dropped_after_the_charge_was_acknowledged_completes_the_sale_once(
    till: Till,
) -> None:
    assert till.ask("terminal", outcome="drop-after-ack")["ok"]
    till.scan_into_cart(COFFEE)

    answer = till.ask("pay", method="card")

    assert answer["ok"] is False and "unknown" in answer["error"], answer
    # Recovery finds the approval standing at the terminal and sells the journalled cart.
    wait_until(lambda: till.app.ledger.count() == 1 and till.attempts() == [], "recovery")
    wait_until(lambda: till.app.checkout.cart.is_empty, "the held cart let go")
    emulator = till.app.lab.terminal if till.app.lab is not None else None
    assert emulator is not None
    assert [(e.kind, e.state) for e in emulator.book] == [("payment", "approved")]
    [sale] = till.app.ledger.since()
    [attempt] = [a for a in [till.app.stores.payments.get(t.reference) for t in sale.tenders] if a]
    assert (attempt.state, attempt.sale_id) == ("settled", sale.id)
    assert attempt.receipt_number == f"{emulator.book[0].receipt_number:04d}"


def test_a_cart_waiting_for_an_id_check_is_refused_before_the_terminal_is_asked(
    till: Till,
) -> None:
    """The sale would be refused after the charge: the card was charged and left open."""
    till.scan_into_cart(WINE)

    answer = till.ask("pay", method="card")

    assert answer == {"ok": False, "error": "age check needed for: Red wine 0.75 l"}
    emulator = till.app.lab.terminal if till.app.lab is not None else None
    assert emulator is not None
    assert emulator.book == [] and (0x06, 0x01) not in [a.command for a in emulator.received]
    assert till.attempts() == [] and till.app.ledger.count() == 0


def test_a_staff_badge_approves_the_id_check_headless_then_the_card_pays(till: Till) -> None:
    """README: the cashier's badge approves the age check; headless too, then `sim pay card`."""
    seed_demo_staff(till.app.stores.staff)
    till.scan_into_cart(WINE)
    wait_until(lambda: till.app.lab is not None and till.app.lab.nfc_tag is not None, "NFC tag")
    stranger = "04DEAD00000009"

    deadline = time.monotonic() + WAIT_SECONDS
    while till.ask("tap", uid=stranger) != {"ok": True}:  # the reader links up after start
        assert time.monotonic() < deadline, "the NFC reader never read a card"
        time.sleep(0.1)
    assert till.app.checkout.cart.pending_age_checks, "a card that is no badge approves nothing"

    assert till.ask("tap", uid=DEMO_CASHIER_BADGE) == {"ok": True}
    wait_until(lambda: not till.app.checkout.cart.pending_age_checks, "the ID check approved")
    answer = till.ask("pay", method="card")

    assert answer["ok"] is True, answer
    assert [sale.receipt_number for sale in till.app.ledger.since()] == [answer["receipt"]]
