"""ZvtTerminal as the till's PaymentTerminal, against the emulated terminal over real TCP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from appliance.core.events import EventBus
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.device_settings import ZvtTerminalSettings
from appliance.drivers.sim.zvt_terminal import Step, ZvtEmulator
from appliance.drivers.zvt.result_codes import MSG_APPROVED, MSG_PIN_WRONG, MSG_UNKNOWN
from appliance.drivers.zvt.terminal import ZvtTerminal
from appliance.errors import DeviceError

WAIT = 10.0


@pytest.fixture
def emulator(no_leaked_threads: None) -> Iterator[ZvtEmulator]:
    emu = ZvtEmulator()
    yield emu
    emu.close()


def open_terminal(emu: ZvtEmulator, **settings: object) -> ZvtTerminal:
    table = ZvtTerminalSettings(host="127.0.0.1", port=emu.serve_tcp(), **settings)  # type: ignore[arg-type]
    terminal = ZvtTerminal("card", table, t4=10.0)
    terminal.open(EventBus())
    return terminal


@pytest.fixture
def terminal(emulator: ZvtEmulator) -> Iterator[ZvtTerminal]:
    opened = open_terminal(emulator)
    yield opened
    opened.close()


def request(amount: int = 1250, currency: str = "EUR", **options: object) -> PaymentRequest:
    return PaymentRequest(amount, currency, f"sale-{amount}-1", **options)  # type: ignore[arg-type]


def wait_health(terminal: ZvtTerminal, state: str) -> None:
    deadline = time.monotonic() + WAIT
    while terminal.health.state != state:
        assert time.monotonic() < deadline, terminal.health
        time.sleep(0.02)


def test_it_registers_when_opened_and_reports_ok(
    emulator: ZvtEmulator, terminal: ZvtTerminal
) -> None:
    wait_health(terminal, "ok")
    assert "52500038" in terminal.health.reason
    [registration] = [a for a in emulator.received if a.command == (0x06, 0x00)]
    assert registration.data[3] == 0xBE  # the till prints, as lines or text blocks
    assert emulator.text_block


def test_an_approval_carries_only_pci_safe_card_data(
    emulator: ZvtEmulator, terminal: ZvtTerminal
) -> None:
    result = terminal.pay(request())
    booked = emulator.book[-1]
    assert result.outcome == "approved"
    assert result.message == MSG_APPROVED
    assert result.amount == 1250 and result.result_code == 0
    assert result.masked_card == "672559******1234"
    assert result.card_brand == "girocard"
    assert result.terminal_id == "52500038"
    assert result.receipt_number == result.terminal_reference == f"{booked.receipt_number:04d}"
    assert result.trace_number == f"{booked.trace_number:06d}"
    assert result.auth_code == f"{booked.trace_number:06d}"
    assert not result.offline
    assert any("12,50" in line for line in result.receipt_lines)


def test_record_gets_the_answer_before_the_terminal_has_the_ack(
    emulator: ZvtEmulator, terminal: ZvtTerminal
) -> None:
    journal: list[tuple[PaymentResult, int]] = []
    result = terminal.pay(request(), record=lambda r: journal.append((r, len(emulator.received))))
    [(recorded, seen)] = journal
    assert recorded.outcome == "approved" and recorded.receipt_number == result.receipt_number
    assert emulator.received[seen].command == (0x80, 0x00)  # the ack came after record()


def test_a_decline_says_why_in_plain_words(emulator: ZvtEmulator, terminal: ZvtTerminal) -> None:
    emulator.script(Step("decline", result_code=0x37))
    result = terminal.pay(request())
    assert result.outcome == "declined"
    assert result.result_code == 0x37
    assert result.message == MSG_PIN_WRONG


def test_a_customer_abort_is_cancelled(emulator: ZvtEmulator, terminal: ZvtTerminal) -> None:
    emulator.script(Step("customer_abort"))
    assert terminal.pay(request()).outcome == "cancelled"


@pytest.mark.parametrize(("answer", "outcome"), [("accept", "cancelled"), ("refuse", "approved")])
def test_cancel_at_the_till_asks_the_terminal_to_abort(
    emulator: ZvtEmulator, terminal: ZvtTerminal, answer: str, outcome: str
) -> None:
    emulator.script(Step(intermediate=20, pause=0.05, abort=answer))  # type: ignore[arg-type]
    timer = threading.Timer(0.2, terminal.cancel)
    timer.start()
    result = terminal.pay(request())
    timer.join()
    assert result.outcome == outcome
    assert any(a.command == (0x06, 0xB0) for a in emulator.received)


def test_an_offline_approval_is_flagged(emulator: ZvtEmulator, terminal: ZvtTerminal) -> None:
    emulator.script(Step("approve_offline"))
    result = terminal.pay(request())
    assert result.outcome == "approved"
    assert result.offline
    assert result.auth_code == ""


def test_receipts_go_to_the_receipt_printer(emulator: ZvtEmulator, terminal: ZvtTerminal) -> None:
    printed: list[str] = []
    terminal.receipt_printer = lambda lines: printed.extend(lines) or True
    result = terminal.pay(request())
    assert tuple(printed) == result.receipt_lines
    assert emulator.printer_faults == 0


def test_a_printer_fault_is_told_to_the_terminal(
    emulator: ZvtEmulator, terminal: ZvtTerminal
) -> None:
    terminal.receipt_printer = lambda lines: False
    result = terminal.pay(request())
    assert emulator.printer_faults >= 1
    assert result.outcome == "approved" and result.receipt_lines  # kept for the e-receipt


def test_a_journal_that_fails_leaves_the_outcome_unknown(
    emulator: ZvtEmulator, terminal: ZvtTerminal
) -> None:
    def broken(result: PaymentResult) -> None:
        raise OSError("disk full")

    result = terminal.pay(request(), record=broken)
    assert result.outcome == "unknown"
    assert result.message == MSG_UNKNOWN
    assert terminal.health.state == "offline"
    assert terminal.pay(request(300)).outcome == "approved"  # reconnects at the next call
    wait_health(terminal, "ok")


@pytest.mark.parametrize("drop", ["before_status", "at_status", "after_ack"])
def test_a_link_dropped_before_the_completion_leaves_the_payment_unknown(
    emulator: ZvtEmulator, terminal: ZvtTerminal, drop: str
) -> None:
    """Only the Completion makes an approval certain; recovery asks the terminal otherwise."""
    emulator.script(Step(drop=drop))  # type: ignore[arg-type]
    journal: list[PaymentResult] = []

    result = terminal.pay(request(), record=journal.append)

    assert result.outcome == "unknown"
    booked = [b for b in emulator.book if b.kind == "payment"]
    if drop == "before_status":
        assert booked == [] and journal == []
    else:  # the answer reached the journal, with what recovery needs to find it again
        assert [b.state for b in booked] == ["approved"]
        assert [(r.outcome, r.receipt_number) for r in journal] == [
            ("approved", f"{booked[0].receipt_number:04d}")
        ]
        assert result.receipt_number == journal[0].receipt_number


def test_last_transaction_after_a_drop_names_the_booked_payment(
    emulator: ZvtEmulator, terminal: ZvtTerminal
) -> None:
    emulator.script(Step(drop="at_status"))
    assert terminal.pay(request(777)).outcome == "unknown"
    last = terminal.last_transaction()
    booked = emulator.book[-1]
    assert last is not None
    assert last.amount == 777 == booked.amount
    assert last.receipt_number == f"{booked.receipt_number:04d}"
    assert last.terminal_id == "52500038"


def test_last_transaction_is_none_when_the_terminal_has_none(terminal: ZvtTerminal) -> None:
    assert terminal.last_transaction() is None


def test_a_payment_is_reversed_by_its_receipt_number(
    emulator: ZvtEmulator, terminal: ZvtTerminal
) -> None:
    paid = terminal.pay(request(990))
    undone = terminal.reverse(paid.receipt_number, request(990))
    assert undone.outcome == "approved"
    assert [b.state for b in emulator.book if b.kind == "payment"] == ["reversed"]
    again = terminal.reverse(paid.receipt_number, request(990))
    assert again.outcome == "declined"
    assert "already reversed" in again.message


def test_a_refund_pays_back_to_the_card(emulator: ZvtEmulator, terminal: ZvtTerminal) -> None:
    result = terminal.refund(request(450))
    assert result.outcome == "approved" and result.amount == 450
    assert emulator.book[-1].kind == "refund"


def test_end_of_day_gives_the_days_total(emulator: ZvtEmulator, terminal: ZvtTerminal) -> None:
    terminal.pay(request(1000))
    terminal.pay(request(250))
    totals = terminal.end_of_day()
    assert (totals.count, totals.amount) == (2, 1250)


def test_check_names_the_software(terminal: ZvtTerminal) -> None:
    assert terminal.check() == "terminal ok, software 2.14.15"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (request(currency="CHF"), "takes EUR, not CHF"),
        (request(allowed=("card",)), "cannot refuse contactless, wallet"),
    ],
)
def test_a_request_it_cannot_honour_is_refused_before_sending(
    emulator: ZvtEmulator, terminal: ZvtTerminal, bad: PaymentRequest, why: str
) -> None:
    wait_health(terminal, "ok")
    before = emulator.received
    with pytest.raises(DeviceError, match=why):
        terminal.pay(bad)
    assert emulator.received == before


def test_a_second_call_while_one_runs_is_busy(emulator: ZvtEmulator, terminal: ZvtTerminal) -> None:
    emulator.script(Step(intermediate=10, pause=0.05))
    results: list[PaymentResult] = []
    first = threading.Thread(target=lambda: results.append(terminal.pay(request())))
    first.start()
    time.sleep(0.2)
    with pytest.raises(DeviceError, match="busy"):
        terminal.check()
    first.join()
    assert results[0].outcome == "approved"


def test_a_terminal_with_another_currency_is_offline_saying_so(emulator: ZvtEmulator) -> None:
    terminal = open_terminal(emulator, currency="CHF")
    try:
        wait_health(terminal, "offline")
        with pytest.raises(DeviceError, match="currency"):
            terminal.pay(request(currency="CHF"))
        assert not any(a.command == (0x06, 0x01) for a in emulator.received)
    finally:
        terminal.close()


def test_a_closed_terminal_refuses_calls(emulator: ZvtEmulator) -> None:
    terminal = open_terminal(emulator)
    terminal.close()
    terminal.close()
    with pytest.raises(DeviceError, match="not open"):
        terminal.pay(request())


def test_a_payment_over_the_serial_line(emulator: ZvtEmulator) -> None:
    table = ZvtTerminalSettings(transport="serial", serial_port=emulator.serve_pty())
    terminal = ZvtTerminal("card", table, t4=10.0)
    terminal.open(EventBus())
    try:
        result = terminal.pay(request())
        assert result.outcome == "approved"
        assert result.masked_card == "672559******1234"
        assert result.receipt_lines
        assert terminal.check() == "terminal ok, software 2.14.15"
    finally:
        terminal.close()
