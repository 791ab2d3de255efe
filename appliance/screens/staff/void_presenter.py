"""Voiding a committed sale of this shift, with a supervisor: every line and tender reversed."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, StringProperty

from appliance.core.events import SaleCommitted
from appliance.core.sale import Sale
from appliance.core.staff import StaffMember
from appliance.errors import ApplianceError
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.messages import staff_message
from appliance.screens.staff.status_presenter import tender_name

log = logging.getLogger(__name__)

SCREEN = "void"
VOID_REASON = "voided at the till"  # the supervisor is kept beside it, on the void


class VoidPresenter(EventDispatcher):
    """The void screen: the shift's sales, newest first; one chosen; Void it."""

    rows = ListProperty()  # [{"sale_id", "receipt", "detail", "amount", "note", "selected"}]
    selected = StringProperty("")  # the chosen sale's id
    chosen_text = StringProperty("")  # "Receipt SIM-12, €6.28" of the chosen sale
    can_void = BooleanProperty(False)  # the chosen sale may be voided
    saving = BooleanProperty(False)
    loading = BooleanProperty(False)  # the shift's sales are being read
    message = StringProperty("")

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._sales: list[Sale] = []
        self._why_not: dict[str, str] = {}  # sale id -> why it cannot be voided ("" if it can)
        ctx.session.bind(language=lambda *_args: self._show())

    def open(self) -> bool:
        """Read the shift's sales (off the main thread: a day's worth is many documents), then
        show the void screen with none chosen. False while a read is under way."""
        if self.loading:
            return False
        self.selected = ""
        self.message = ""
        self._load(then_show=True)
        return True

    def select(self, sale_id: str) -> None:
        """Touch a sale to choose it; touch it again to let go."""
        self.selected = "" if self.selected == sale_id else sale_id
        self.message = self._why_not.get(self.selected, "")
        self._show()

    def chosen(self) -> Sale | None:
        """The chosen sale."""
        return next((s for s in self._sales if s.id == self.selected), None)

    def needs_approval(self) -> bool:
        """True unless a supervisor is the one logged in: a void always has a supervisor."""
        staff = self._ctx.session.staff
        return not (staff is not None and staff.is_supervisor)

    def void(self, approver: StaffMember | None = None) -> bool:
        """Store the void of the chosen sale (off the main thread); its receipt is offered."""
        tr = self._ctx.tr
        staff = self._ctx.session.staff
        sale = self.chosen()
        if staff is None:
            self.message = tr._("Please log in first.")
            return False
        if sale is None:
            self.message = tr._("Touch a sale first, then Void sale.")
            return False
        if approver is None and staff.is_supervisor:
            approver = staff
        if approver is None or not approver.is_supervisor:
            self.message = tr._("A supervisor must approve a void.")
            return False
        why_not = self._ctx.stores.shifts.can_void(sale)
        if why_not:
            self.message = tr._("This sale cannot be voided: {reason}").format(reason=why_not)
            return False
        if self.saving:
            return False
        self.saving = True
        self.message = ""
        staff_id, supervisor = staff.staff_id, approver.staff_id
        self._ctx.writes.run(lambda: self._commit(sale, staff_id, supervisor), self._stored)
        return True

    def back(self) -> None:
        """Back to the till."""
        self._ctx.session.go("till")

    def _commit(self, sale: Sale, staff: str, supervisor: str) -> Sale:
        """On the writer thread: store the void (checked again under the write lock)."""
        void = self._ctx.stores.shifts.void(
            self._ctx.services.app.ledger,
            sale,
            staff=staff,
            supervisor=supervisor,
            reason=VOID_REASON,
        )
        # Posted before the write's outcome, so the receipt screen has the document to show;
        # AfterSale opens the drawer to pay cash back and prints the void's receipt.
        self._ctx.bus.post(SaleCommitted.of(void))
        return void

    def _stored(self, void: Sale | None, error: ApplianceError | None) -> None:
        self.saving = False
        if void is None:
            log.warning("void failed: %s", error)
            self.message = staff_message(self._ctx.tr, error)
            self._load()
            return
        log.info("void %s of sale %s: %d", void.receipt_number, void.references, void.total)
        self.selected = ""
        self._ctx.session.finished(void.id)

    def _load(self, *, then_show: bool = False) -> None:
        """Read the sales and whether each may be voided on the writer thread, in turn with
        the writes (a void just stored is among them)."""
        self.loading = True
        shifts = self._ctx.stores.shifts

        def read() -> tuple[list[Sale], dict[str, str]]:
            sales = [s for s in reversed(shifts.sales_of()) if s.kind == "sale"]
            return sales, {s.id: shifts.can_void(s) for s in sales}

        def loaded(
            found: tuple[list[Sale], dict[str, str]] | None, error: ApplianceError | None
        ) -> None:
            self.loading = False
            if found is None:
                self.message = staff_message(self._ctx.tr, error)
                found = [], {}
            self._sales, self._why_not = found
            self._show()
            if then_show:
                self._ctx.session.go(SCREEN)

        self._ctx.writes.run(read, loaded)

    def _show(self) -> None:
        tr = self._ctx.tr
        if self.selected and self.chosen() is None:
            self.selected = ""
        self.rows = [
            {
                "sale_id": sale.id,
                "receipt": sale.receipt_number,
                "detail": ", ".join(
                    [tr.datetime(sale.created_at.astimezone())]
                    + [tender_name(tr, t.kind) for t in sale.tenders]
                ),
                "amount": tr.money(sale.total, sale.currency),
                "note": tr._("Cannot be voided") if self._why_not.get(sale.id) else "",
                "selected": sale.id == self.selected,
            }
            for sale in self._sales
        ]
        sale = self.chosen()
        self.can_void = sale is not None and not self._why_not.get(sale.id)
        self.chosen_text = (
            tr._("Receipt {number}, {amount}").format(
                number=sale.receipt_number, amount=tr.money(sale.total, sale.currency)
            )
            if sale is not None
            else tr._("Touch a sale to void it.")
        )
