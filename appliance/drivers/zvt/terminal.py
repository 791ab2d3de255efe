"""ZvtTerminal: a card terminal speaking ZVT (PA00P015) as the till's PaymentTerminal.

It connects lazily and registers once per connection: the config byte says whether the
till prints the receipts (`print_receipts`), and TLV tag 26 allows them as whole text
blocks (`06 D3`). A request it cannot honour (amount, currency, payment kinds) is refused
with DeviceError before anything is sent. One exchange runs at a time; a second call meets
DeviceError "busy". A failed link marks the terminal offline and is reopened at the next call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping

from appliance.core.clock import Clock
from appliance.core.payment import AnswerRecorder, PaymentRequest, PaymentResult, TerminalTotals
from appliance.device_settings import ZvtTerminalSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.zvt import commands
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.link import ZvtLink, open_link
from appliance.drivers.zvt.messages import StatusInformation
from appliance.drivers.zvt.outcome import (
    outcome_of,
    payment_result,
    recorded,
    totals_result,
    transaction_result,
)
from appliance.drivers.zvt.result_codes import message_for
from appliance.drivers.zvt.session import T3, T4, Exchange, ReceiptSink, ZvtSession
from appliance.errors import DeviceError, ZvtError

log = logging.getLogger(__name__)

# What the PT may send the ECR (TLV tag 26 of the Registration): everything this adapter
# answers, Print Text-Block included, so a whole receipt comes as one message.
PERMITTED = ((0x04, 0x0F), (0x04, 0xFF), (0x06, 0x0F), (0x06, 0x1E), (0x06, 0xD1), (0x06, 0xD3))
REGISTRATION_TIMEOUT = 30.0

ReceiptPrinter = Callable[[tuple[str, ...]], bool]
LinkFactory = Callable[[ZvtTerminalSettings], ZvtLink]


class ZvtTerminal(DeviceBase):
    """A ZVT payment terminal over TCP/IP or a serial line.

    Thread-safe: every call but `cancel` blocks its caller (call it off the main thread);
    `cancel` may come from any thread. `receipt_printer`, when set, gets the terminal's
    receipt lines and says whether they were printed; without it they are only kept for
    the e-receipt (`PaymentResult.receipt_lines`).
    """

    kind = "payment_terminal"

    def __init__(
        self,
        name: str,
        settings: ZvtTerminalSettings,
        *,
        receipt_printer: ReceiptPrinter | None = None,
        link_factory: LinkFactory = open_link,
        t3: float = T3,
        t4: float = T4,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, address=settings.address)
        self.settings = settings
        self.receipt_printer = receipt_printer
        self._currency = commands.currency_numeric(settings.currency)
        self._link_factory = link_factory
        self._t3, self._t4, self._clock = t3, t4, clock
        self._busy = threading.Lock()  # one exchange at a time; never waited for
        self._link_lock = threading.Lock()  # guards _session and _running; held briefly
        self._connect_lock = threading.Lock()  # one connect and registration at a time
        self._session: ZvtSession | None = None
        self._running: ZvtSession | None = None
        self._connector: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls, name: str, settings: ZvtTerminalSettings, built: Mapping[str, DeviceBase]
    ) -> ZvtTerminal:
        """The terminal the settings name; the service wires its receipt printer later."""
        return cls(name, settings)

    # -- the PaymentTerminal port (any caller thread) -----------------------------------

    def pay(
        self, request: PaymentRequest, timeout: float = 120.0, record: AnswerRecorder | None = None
    ) -> PaymentResult:
        """Run one Authorization (06 01); "unknown" when it may have charged."""
        payment_type = self._refuse(request)
        apdu = commands.authorization(request.amount, self._currency, payment_type)
        return self._transaction(apdu, request, timeout, record)

    def refund(
        self, request: PaymentRequest, timeout: float = 120.0, record: AnswerRecorder | None = None
    ) -> PaymentResult:
        """Pay `request.amount` back to the card presented (Refund 06 31)."""
        self._refuse(request)
        apdu = commands.refund(self.settings.password, request.amount, self._currency)
        return self._transaction(apdu, request, timeout, record)

    def reverse(
        self,
        receipt_number: str,
        request: PaymentRequest,
        timeout: float = 120.0,
        record: AnswerRecorder | None = None,
    ) -> PaymentResult:
        """Undo today's payment with this receipt number (Reversal 06 30)."""
        if not receipt_number.isdigit() or len(receipt_number) > 4:
            raise DeviceError(f"receipt number {receipt_number!r} is not 1 to 4 digits")
        apdu = commands.reversal(self.settings.password, int(receipt_number))
        return self._transaction(apdu, request, timeout, record)

    def cancel(self) -> None:
        """Ask the terminal to abort the running exchange (06 B0); a no-op when idle."""
        with self._link_lock:
            running = self._running
        if running is not None:
            running.cancel()

    def last_transaction(self, timeout: float = 30.0) -> PaymentResult | None:
        """The last booked transaction (Status Enquiry, then Repeat Receipt 06 20), or None."""
        with self._exclusive():
            # The enquiry first: a PT still busy with the broken-off transaction finishes
            # it (or its auto-reversal) before it answers, so the repeat shows the end state.
            enquiry = self._exchange(commands.status_enquiry(self.settings.password), timeout)
            if enquiry.lost:
                raise DeviceError(f"last transaction not known: {enquiry.lost}")
            exchange = self._exchange(commands.repeat_receipt(self.settings.password), timeout)
        if exchange.lost:
            raise DeviceError(f"last transaction not known: {exchange.lost}")
        status = exchange.status
        if status is None:
            return None  # an Abort: the PT has nothing to repeat
        return payment_result(
            status, "", outcome_of(status.result_code), lines=exchange.receipt_lines
        )

    def end_of_day(self, timeout: float = 120.0) -> TerminalTotals:
        """Close the terminal's day (End-of-Day 06 50) and submit its payments."""
        with self._exclusive():
            exchange = self._exchange(commands.end_of_day(self.settings.password), timeout)
        return totals_result(exchange)

    def check(self, timeout: float = 10.0) -> str:
        """Status Enquiry (05 01): "terminal ok, software ..." or DeviceError."""
        with self._exclusive():
            exchange = self._exchange(commands.status_enquiry(self.settings.password), timeout)
        completion = exchange.completion
        if completion is None:
            why = exchange.lost or message_for(exchange.abort_code)
            raise DeviceError(f"terminal {self.name} did not answer its status: {why}")
        if completion.status_byte:
            # The terminal status code (PA00P015 chapter 11), e.g. CC printer not ready.
            raise DeviceError(f"terminal {self.name} not ready: {completion.status_byte:02X}")
        software = completion.software_version or "unknown"
        return f"terminal ok, software {software}"

    # -- the exchange, under the busy lock ------------------------------------------------

    def _refuse(self, request: PaymentRequest) -> int | None:
        """DeviceError for a request this terminal cannot honour; BMP 19 for one it can."""
        if request.amount <= 0:
            raise DeviceError(f"payment amount must be positive, got {request.amount}")
        if request.currency != self.settings.currency:
            raise DeviceError(
                f"terminal {self.name} takes {self.settings.currency}, not {request.currency}"
            )
        return commands.payment_type_for(request.allowed)

    def _transaction(
        self,
        apdu: Apdu,
        request: PaymentRequest,
        timeout: float,
        record: AnswerRecorder | None,
    ) -> PaymentResult:
        reference = request.merchant_reference

        def journal(status: StatusInformation) -> None:
            if record is not None:
                record(recorded(status, reference))

        with self._exclusive():
            exchange = self._exchange(apdu, timeout, journal)
        result = transaction_result(exchange, reference)
        log.info(
            "terminal %s: %s of %d %s for %s: %s%s",
            self.name,
            commands.Command.of(apdu).name.lower(),
            request.amount,
            request.currency,
            reference,
            result.outcome,
            f" ({exchange.lost})" if exchange.lost else "",
        )
        return result

    def _exchange(
        self,
        apdu: Apdu,
        timeout: float,
        record: Callable[[StatusInformation], None] | None = None,
    ) -> Exchange:
        """One exchange on the registered session; a failed link is dropped, reopened next call."""
        while True:
            session, fresh = self._connected()
            with self._link_lock:
                self._running = session
            try:
                exchange = session.run(
                    apdu, timeout=timeout, record=record, print_lines=self._receipt_sink()
                )
            except ZvtError as err:
                self._drop(session, str(err))
                # session.run raises only before the PT's 80 00 00: it took nothing. A link
                # kept from an earlier exchange may have gone stale meanwhile (terminals
                # close idle connections), so one fresh connection gets the command again.
                if fresh:
                    raise
                log.info("terminal %s: link gone stale (%s); reconnecting", self.name, err)
                continue
            finally:
                with self._link_lock:
                    self._running = None
            if exchange.lost:
                self._drop(session, exchange.lost)
            return exchange

    def _receipt_sink(self) -> ReceiptSink | None:
        printer = self.receipt_printer
        if printer is None or not self.settings.print_receipts:
            return None
        return printer

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if not self._opened:
            raise DeviceError(f"terminal {self.name} is not open")
        if not self._busy.acquire(blocking=False):
            raise DeviceError(f"terminal {self.name} is busy with another payment")
        try:
            yield
        finally:
            self._busy.release()

    # -- the connection ---------------------------------------------------------------

    def _connected(self) -> tuple[ZvtSession, bool]:
        """(the registered session, whether it is new), connecting and registering if none."""
        # The connect lock, not the link lock, is held while connecting: cancel() and close()
        # take the link lock and must not wait out a connect timeout.
        with self._connect_lock:
            with self._link_lock:
                if self._session is not None:
                    return self._session, False
            if not self._opened:
                raise DeviceError(f"terminal {self.name} is not open")
            try:
                link = self._link_factory(self.settings)
            except DeviceError as err:
                self._set_health("offline", str(err))
                raise
            session = ZvtSession(link, t3=self._t3, t4=self._t4, clock=self._clock)
            with self._link_lock:
                if not self._opened:  # closed while connecting
                    link.close()
                    raise DeviceError(f"terminal {self.name} is not open")
                self._session = session
            try:
                self._register(session)
            except DeviceError as err:
                self._drop(session, f"registration failed: {err}")
                raise
            return session, True

    def _register(self, session: ZvtSession) -> None:
        apdu = commands.registration(
            self.settings.password,
            commands.config_byte(self.settings.print_receipts),
            self._currency,
            tlv=commands.permitted_commands(*PERMITTED),
        )
        exchange = session.run(apdu, timeout=REGISTRATION_TIMEOUT)
        if exchange.completion is None:
            why = exchange.lost or message_for(exchange.abort_code)
            raise DeviceError(f"terminal {self.name} did not complete the registration: {why}")
        terminal_id = exchange.completion.terminal_id
        self._set_health("ok", f"registered{f', terminal {terminal_id}' if terminal_id else ''}")

    def _drop(self, session: ZvtSession, why: str) -> None:
        with self._link_lock:
            if self._session is session:
                self._session = None
        session.link.close()
        if self._opened:
            self._set_health("offline", why)

    def _start(self) -> None:
        self._set_health("offline", "connecting")
        # Connect and register now rather than at the first payment; a failure only sets
        # the health, and the next call tries again.
        self._connector = threading.Thread(
            target=self._connect_quietly, name=f"zvt-{self.name}-connect", daemon=True
        )
        self._connector.start()

    def _connect_quietly(self) -> None:
        # A call arriving meanwhile waits on the connect lock, then finds the session.
        try:
            self._connected()
        except DeviceError as err:
            log.warning("terminal %s: %s", self.name, err)

    def _stop(self) -> None:
        self.cancel()
        with self._link_lock:
            session, self._session = self._session, None
        if session is not None:
            session.link.close()
        if self._connector is not None:
            self._connector.join(timeout=REGISTRATION_TIMEOUT)
            self._connector = None
