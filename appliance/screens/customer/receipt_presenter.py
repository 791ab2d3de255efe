"""After paying: a printed receipt, a QR e-receipt, or none; then thanks, then home."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kivy.clock import Clock, ClockEvent
from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ObjectProperty, OptionProperty, StringProperty

from appliance.core.card_balance import CardDebitResult
from appliance.core.devices import (
    DeviceHealth,
    DeviceHealthChanged,
    PrinterStatus,
    ReceiptPrinter,
    ReceiptQueued,
)
from appliance.core.events import Event, SaleCommitted
from appliance.core.sale import Sale
from appliance.errors import StoreError
from appliance.screens.customer.background import run_in_background
from appliance.screens.customer.qr_receipt import (
    QrPixels,
    qr_texture,
    receipt_link,
    receipt_text,
    render_qr,
)
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.lifecycle import when_app_stops

log = logging.getLogger(__name__)

SCREEN = "receipt"
THANKS = "thanks"
# A QR code needs time to be scanned with a phone: its thank-you stays up this much longer.
QR_THANKS_FACTOR = 3
# Health reasons (set by the printer adapter) that stop a receipt from printing.
STOPPED_REASONS = frozenset({"paper out", "cover open", "printer offline"})
# The printer says nothing unasked: while the choice is up, it is asked again this often, so
# paper running out (or put back) changes what is offered before the customer touches Print.
PRINTER_RECHECK_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class PrinterChecked(Event):
    """The printer answered a status request made on a worker thread."""

    status: PrinterStatus


@dataclass(frozen=True, slots=True)
class QrRendered(Event):
    """A receipt's QR code was rendered on a worker thread."""

    sale_id: str
    pixels: QrPixels


@dataclass(frozen=True, slots=True)
class CardAfterRead(Event):
    """What the stored-value card that paid a sale held after it, read on a worker thread."""

    sale_id: str
    card: CardDebitResult | None


class ReceiptPresenter(EventDispatcher):
    """What the receipt and thank-you screens show, and the customer's choice; main thread."""

    receipt_number = StringProperty("")
    card_note = StringProperty("")  # a hub card's balance and loyalty points after paying
    can_print = BooleanProperty(False)
    printer_notice = StringProperty("")  # why Print is off, in words that offer the QR code
    choice = OptionProperty("", options=["", "print", "qr", "none"])
    qr = ObjectProperty(None, allownone=True)  # the QR code's texture, once rendered

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._sale: Sale | None = None
        self._last_committed: Sale | None = None  # from the bus: never read back from the store
        self._home_timer: ClockEvent | None = None
        self._recheck: ClockEvent | None = None
        self._asking = False  # a status request is with the printer
        ctx.bus.subscribe(PrinterChecked, self._printer_checked)
        ctx.bus.subscribe(DeviceHealthChanged, self._health_changed)
        ctx.bus.subscribe(ReceiptQueued, self._queued)
        ctx.bus.subscribe(QrRendered, self._qr_rendered)
        ctx.bus.subscribe(CardAfterRead, self._card_read)
        ctx.bus.subscribe(SaleCommitted, self._committed)
        ctx.session.bind(screen=self._screen_changed)
        self._stopped = False  # device news after the app stopped changes nothing on screen
        when_app_stops(self._stop)

    def print_receipt(self) -> None:
        """Print the receipt, then thank the customer."""
        sale = self._sale
        if sale is None or not self.can_print:
            return
        if not self._ctx.services.after_sale.print_receipt(sale):
            tr = self._ctx.tr
            self._printer_off(tr._("The printer is not working. Take a QR receipt instead."))
            return
        self.choice = "print"
        self._ctx.session.go(THANKS)

    def show_qr(self) -> None:
        """Show the receipt as a QR code on the thank-you screen."""
        sale = self._sale
        if sale is None:
            return
        template = self._ctx.settings.screen.e_receipt_url
        data = receipt_link(template, sale) if template else None
        if data is None:
            data = receipt_text(sale, self._ctx.tr, self._ctx.settings.store.name)
        bus, sale_id = self._ctx.bus, sale.id
        run_in_background("qr-receipt", lambda: bus.post(QrRendered(sale_id, render_qr(data))))
        self.choice = "qr"
        self._ctx.session.go(THANKS)

    def no_receipt(self) -> None:
        """No receipt: straight to the thank-you."""
        if self._sale is not None:
            self.choice = "none"
            self._ctx.session.go(THANKS)

    def done(self) -> None:
        """The thank-you is over (timer or touch): ready for the next customer."""
        self._cancel_timer()
        if self._ctx.session.screen != THANKS:
            return
        self.qr = None
        self.choice = ""
        if self._ctx.session.mode == "kiosk":
            self._ctx.session.reset()  # also back to the first language
        else:
            self._ctx.session.go_home()

    def _read_card(self, sale: Sale | None) -> None:
        """Read, off the main thread, what the stored-value card that paid `sale` holds now."""
        cards = self._ctx.services.app.cards
        references = [t.reference for t in sale.tenders if t.kind == "stored_value"] if sale else []
        if cards is None or sale is None or not references:
            return
        bus, sale_id, reference = self._ctx.bus, sale.id, references[0]

        def read() -> None:
            try:
                card = cards.after(reference)
            except StoreError as err:
                log.warning("card balance of sale %s not read: %s", sale_id, err)
                card = None
            bus.post(CardAfterRead(sale_id, card))

        run_in_background("card-note", read)

    def _card_read(self, event: CardAfterRead) -> None:
        sale, card = self._sale, event.card
        if sale is None or sale.id != event.sale_id or card is None:
            return
        tr = self._ctx.tr
        text = tr._("Card balance: {balance}. Loyalty points: {points}")
        if card.offline:  # the hub has not seen this payment yet
            text = tr._("Card balance (not yet confirmed): {balance}. Loyalty points: {points}")
        self.card_note = text.format(
            balance=tr.money(card.balance, sale.currency), points=card.points
        )

    # -- screens -----------------------------------------------------------------------

    def _screen_changed(self, _session: Any, screen: str) -> None:
        if screen == SCREEN:
            self._offer(self._ctx.session.last_sale_id)
            if self._recheck is None:
                self._recheck = Clock.schedule_interval(self._ask_printer, PRINTER_RECHECK_SECONDS)
            return
        self._stop_recheck()
        if screen == THANKS:
            seconds = self._ctx.settings.screen.thanks_seconds
            if self.choice == "qr":
                seconds *= QR_THANKS_FACTOR
            self._home_timer = Clock.schedule_once(lambda _dt: self.done(), seconds)
        else:
            self._cancel_timer()

    def _stop(self) -> None:
        self._stopped = True
        self._cancel_timer()
        self._stop_recheck()

    def _stop_recheck(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None

    def _cancel_timer(self) -> None:
        if self._home_timer is not None:
            self._home_timer.cancel()
            self._home_timer = None

    def _offer(self, sale_id: str) -> None:
        committed = self._last_committed
        if committed is not None and committed.id == sale_id:
            self._sale = committed
        else:  # not heard on the bus (committed before this presenter was built)
            self._sale = self._ctx.services.app.ledger.get(sale_id) if sale_id else None
        self.receipt_number = self._sale.receipt_number if self._sale is not None else ""
        self.card_note = ""
        self._read_card(self._sale)
        self.qr = None
        self.choice = ""
        printer = self._printer()
        if printer is None:
            tr = self._ctx.tr
            self._printer_off(tr._("There is no printer here. Take a QR receipt instead."))
            return
        self._judge_health(printer.health)
        # Health may be old news (paper taken out since): ask the printer itself.
        self._ask_printer()

    def _ask_printer(self, _dt: float = 0.0) -> None:
        """Ask the printer for its status off-thread, one request at a time."""
        printer = self._printer()
        if printer is None or self._asking:
            return
        self._asking = True
        bus = self._ctx.bus
        run_in_background("printer-status", lambda: bus.post(PrinterChecked(printer.status())))

    def _committed(self, event: SaleCommitted) -> None:
        # It arrives before the write's outcome that brings this screen up (one bus, in order).
        self._last_committed = event.sale

    def _printer(self) -> ReceiptPrinter | None:
        if not self._ctx.services.after_sale.can_print:
            return None
        return self._ctx.services.devices.printer

    # -- the printer -------------------------------------------------------------------

    def _printer_checked(self, event: PrinterChecked) -> None:
        self._asking = False
        if self._stopped or self._ctx.session.screen != SCREEN:
            return
        tr = self._ctx.tr
        status = event.status
        if status.paper_out:
            self._printer_off(tr._("The printer is out of paper. Take a QR receipt instead."))
        elif status.cover_open or not status.online:
            self._printer_off(tr._("The printer is not working. Take a QR receipt instead."))
        else:
            self._printer_on()

    def _health_changed(self, event: DeviceHealthChanged) -> None:
        if self._stopped or self._ctx.session.screen != SCREEN:
            return
        if event.health.kind == "printer":
            self._judge_health(event.health)

    def _judge_health(self, health: DeviceHealth) -> None:
        tr = self._ctx.tr
        if health.state == "offline":
            self._printer_off(tr._("The printer is not working. Take a QR receipt instead."))
        elif health.state == "degraded" and health.reason == "paper out":
            self._printer_off(tr._("The printer is out of paper. Take a QR receipt instead."))
        elif health.state == "degraded" and health.reason in STOPPED_REASONS:
            self._printer_off(tr._("The printer is not working. Take a QR receipt instead."))
        else:
            self._printer_on()

    def _printer_on(self) -> None:
        self.can_print = True
        self.printer_notice = ""

    def _printer_off(self, text: str) -> None:
        if not self.can_print and self.printer_notice == text:
            return
        self.can_print = False
        self.printer_notice = text
        log.info("printing not offered: %s", text)
        self._ctx.session.say(text, "warning")

    def _queued(self, event: ReceiptQueued) -> None:
        # The customer asked for paper that did not come out: say so while they are here.
        sale = self._sale
        if self._stopped or sale is None:
            return
        if event.receipt_number == sale.receipt_number and self.choice:
            self._ctx.session.say(
                self._ctx.tr._(
                    "Your receipt could not be printed yet. Please ask a member of staff."
                ),
                "warning",
            )

    def _qr_rendered(self, event: QrRendered) -> None:
        sale = self._sale
        if sale is not None and event.sale_id == sale.id and self.choice == "qr":
            self.qr = qr_texture(event.pixels)
