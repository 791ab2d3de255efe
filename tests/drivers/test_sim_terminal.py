"""SimTerminal: scripted outcomes, cancel, silence as "unknown", one payment at a time."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest

from appliance.core.devices import DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.device_settings import SimTerminalSettings
from appliance.drivers.sim_terminal import SimTerminal
from appliance.errors import DeviceError

WAIT = 10.0  # generous: only bounds a hang, never asserted as a duration


def request(reference: str = "sale-1/1", amount: int = 1250) -> PaymentRequest:
    """A plausible payment request."""
    return PaymentRequest(amount, "EUR", reference)


@pytest.fixture
def bus() -> EventBus:
    """A bus for the terminal's health events."""
    return EventBus()


@pytest.fixture
def terminal(bus: EventBus) -> Iterator[SimTerminal]:
    """An open terminal that answers at once, approving."""
    device = SimTerminal("terminal", ("approve",), delay_seconds=0.0)
    device.open(bus)
    yield device
    device.close()


class Paying:
    """Runs terminal.pay() in a thread, so a test can act while it blocks."""

    def __init__(self, terminal: SimTerminal, timeout: float = WAIT) -> None:
        self.result: PaymentResult | None = None
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(terminal, timeout))
        self._thread.start()

    def _run(self, terminal: SimTerminal, timeout: float) -> None:
        try:
            self._started.set()
            self.result = terminal.pay(request("sale-2/1"), timeout=timeout)
        except BaseException as err:
            self.error = err

    def join(self) -> PaymentResult:
        """Wait for the answer."""
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "pay() did not return"
        assert self.error is None, self.error
        assert self.result is not None
        return self.result


def wait_busy(terminal: SimTerminal) -> None:
    """Wait until the terminal refuses a second payment, i.e. the first is running."""
    done = threading.Event()
    while not done.wait(0.01):
        try:
            terminal.pay(request("probe"), timeout=0.0)
        except DeviceError as err:
            if "busy" in str(err):
                return
            raise


def test_opening_reports_ok(bus: EventBus) -> None:
    """Opened, the terminal is healthy and says so on the bus; closed, it is offline."""
    device = SimTerminal("terminal")
    seen: list[DeviceHealthChanged] = []
    bus.subscribe(DeviceHealthChanged, seen.append)

    device.open(bus)
    device.close()
    device.close()  # safe twice
    bus.drain()

    assert [e.health.state for e in seen] == ["ok", "offline"]
    assert device.health.state == "offline"


def test_approve_gives_a_unique_reference_and_only_a_masked_card(terminal: SimTerminal) -> None:
    """Approved payments carry distinct terminal references and the last four digits only."""
    first = terminal.pay(request("sale-1/1"))
    second = terminal.pay(request("sale-2/1"))

    assert (first.outcome, second.outcome) == ("approved", "approved")
    assert first.merchant_reference == "sale-1/1"
    assert first.terminal_reference and first.terminal_reference != second.terminal_reference
    assert first.masked_card == "**** 4242"
    assert not re.search(r"\d{5,}", first.masked_card + first.message)


def test_outcomes_cycle_through_the_script(bus: EventBus) -> None:
    """approve, decline, cancel, then the script starts over."""
    settings = SimTerminalSettings(outcomes=("approve", "decline", "cancel"), delay_seconds=0.0)
    device = SimTerminal.from_settings("terminal", settings, {})
    with device:
        device.open(bus)
        outcomes = [device.pay(request(f"sale-{i}/1")).outcome for i in range(4)]
        declined = device.pay(request("sale-9/1"))

    assert outcomes == ["approved", "declined", "cancelled", "approved"]
    assert declined.outcome == "declined"
    assert declined.message


def test_a_silent_terminal_is_unknown_never_approved(terminal: SimTerminal) -> None:
    """ "timeout": no answer within the caller's timeout gives "unknown"."""
    terminal.script(["timeout"])

    result = terminal.pay(request(), timeout=0.05)

    assert result.outcome == "unknown"
    assert result.terminal_reference == ""
    assert result.masked_card == ""


def test_a_customer_slower_than_the_timeout_is_unknown(bus: EventBus) -> None:
    """An approval that would come after the timeout is not assumed: "unknown"."""
    with SimTerminal("terminal", ("approve",), delay_seconds=30.0) as device:
        device.open(bus)
        assert device.pay(request(), timeout=0.05).outcome == "unknown"


def test_cancel_during_a_payment_answers_cancelled(bus: EventBus) -> None:
    """cancel() from another thread ends a running payment as "cancelled"."""
    with SimTerminal("terminal", ("approve",), delay_seconds=60.0) as device:
        device.open(bus)
        paying = Paying(device)
        wait_busy(device)

        device.cancel()

        assert paying.join().outcome == "cancelled"


def test_cancel_when_idle_does_not_spoil_the_next_payment(terminal: SimTerminal) -> None:
    """A stray cancel before a payment starts is ignored."""
    terminal.cancel()

    assert terminal.pay(request()).outcome == "approved"


def test_a_second_payment_while_one_runs_is_refused(bus: EventBus) -> None:
    """One payment at a time: a concurrent pay() raises DeviceError; the first completes."""
    with SimTerminal("terminal", ("approve",), delay_seconds=60.0) as device:
        device.open(bus)
        paying = Paying(device)
        wait_busy(device)

        with pytest.raises(DeviceError, match="busy"):
            device.pay(request("sale-3/1"))

        device.cancel()
        assert paying.join().outcome == "cancelled"


def test_closing_ends_a_running_payment(bus: EventBus) -> None:
    """close() during a payment does not leave the caller hanging."""
    device = SimTerminal("terminal", ("approve",), delay_seconds=60.0)
    device.open(bus)
    paying = Paying(device)
    wait_busy(device)

    device.close()

    assert paying.join().outcome == "cancelled"


def test_script_can_be_changed_at_runtime(terminal: SimTerminal) -> None:
    """`script()` sets what the next payments answer, from its first outcome."""
    terminal.script(["decline", "approve"])

    assert terminal.pay(request("a")).outcome == "declined"
    assert terminal.pay(request("b")).outcome == "approved"
    assert terminal.outcomes == ("decline", "approve")


@pytest.mark.parametrize("bad", [["refund"], [], "approve-ish"])
def test_an_unknown_script_is_refused(terminal: SimTerminal, bad: list[str] | str) -> None:
    """Only approve, decline, cancel and timeout can be scripted."""
    with pytest.raises(DeviceError):
        terminal.script(bad)
    assert terminal.outcomes == ("approve",)


@pytest.mark.parametrize(
    ("currency", "reference", "match"),
    [("eur", "sale-1/1", "ISO 4217"), ("XYZ", "sale-1/1", "ISO 4217"), ("EUR", "  ", "reference")],
)
def test_bad_requests_are_refused_before_charging(
    terminal: SimTerminal, currency: str, reference: str, match: str
) -> None:
    """A lower-case or unknown currency or an empty reference raises DeviceError."""
    with pytest.raises(DeviceError, match=match):
        terminal.pay(PaymentRequest(100, currency, reference))
    # Nothing was used up: the script still starts with its first outcome.
    assert terminal.pay(request()).outcome == "approved"


def test_a_closed_terminal_refuses_to_pay() -> None:
    """pay() before open() raises DeviceError."""
    with pytest.raises(DeviceError, match="not open"):
        SimTerminal("terminal").pay(request())


def test_a_zero_amount_never_reaches_the_terminal() -> None:
    """The request itself refuses a non-positive amount."""
    with pytest.raises(ValueError, match="positive"):
        PaymentRequest(0, "EUR", "sale-1/1")
