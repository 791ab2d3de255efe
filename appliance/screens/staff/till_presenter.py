"""The staffed till: the cart with a selected line, discounts, park, no-sale, logout."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty

from appliance.core.cart import Cart
from appliance.core.checkout import CartChanged
from appliance.core.devices import DrawerOpening
from appliance.core.discount import Discount
from appliance.core.staff import StaffMember, may_discount
from appliance.core.tax import BASIS_POINTS
from appliance.errors import ApplianceError, StoreError
from appliance.screens.i18n import Translator
from appliance.screens.presenters.cart import CartPresenter
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.lifecycle import while_app_runs
from appliance.screens.presenters.messages import customer_message
from appliance.store.parked_carts import ParkedCart

log = logging.getLogger(__name__)

PERCENT = BASIS_POINTS // 100  # basis points in one percent
DISCOUNT_CHOICES = (5, 10, 15, 20, 50)  # the percent buttons of the discount dialog
# Why a no-sale opened the drawer: the key goes into the drawer log, the words on the button.
NO_SALE_REASONS = ("change_for_float", "customer_query", "other")


def role_name(tr: Translator, role: str) -> str:
    """A role in words."""
    return tr._("Supervisor") if role == "supervisor" else tr._("Cashier")


def no_sale_reason_text(tr: Translator, key: str) -> str:
    """A no-sale reason in words."""
    if key == "change_for_float":
        return tr._("Change for the float")
    if key == "customer_query":
        return tr._("Customer query")
    return tr._("Other")


class TillPresenter(EventDispatcher):
    """What the till screen shows besides the cart rows, and what its buttons do."""

    rows = ListProperty()  # the cart's rows, each with `selected`
    selected = NumericProperty(-1)  # the line chosen for a void, -1 for none
    staff_text = StringProperty("")
    discount_text = StringProperty("")
    discount_percent = NumericProperty(0)  # the cart discount in percent, 0 for none
    logged_in = BooleanProperty(False)

    def __init__(self, ctx: ScreenContext, cart: CartPresenter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._cart = cart
        self._parked = ctx.stores.parked
        self._cart.bind(rows=lambda *_args: self._rebuild())
        ctx.session.bind(staff=lambda *_args: self._staff_changed())
        ctx.session.bind(language=lambda *_args: self._staff_changed())
        ctx.bus.subscribe(CartChanged, while_app_runs(lambda _event: self._discount_changed()))
        self._staff_changed()
        self._rebuild()

    # -- the cart ---------------------------------------------------------------------------

    def select(self, line_id: int) -> None:
        """Touch a line to choose it; touch it again to let go."""
        self.selected = -1 if self.selected == line_id else line_id
        self._rebuild()

    def void_selected(self) -> None:
        """Take the chosen line off the cart (before payment a void is a removal)."""
        if self.selected < 0:
            self._say(self._ctx.tr._("Touch a line first, then Void line."))
            return
        line_id = self.selected
        self.selected = -1
        self._cart.remove(line_id)
        self._rebuild()

    def confirm_age(self) -> None:
        """The staff member at the till checked the buyer's ID for every restricted line."""
        if not self._require_staff() or self._cart.refuses_changes():
            return
        try:
            self._ctx.checkout.approve_age(self._ctx.session.staff_id)
        except ApplianceError as err:
            self._say(customer_message(self._ctx.tr, err))

    # -- discounts --------------------------------------------------------------------------

    def needs_approval(self, percent: int) -> bool:
        """True when the member at the till may not give `percent` off alone."""
        staff = self._ctx.session.staff
        return staff is None or not may_discount(staff, percent, self._cashier_limit)

    def apply_discount(self, percent: int, approver: StaffMember | None = None) -> bool:
        """Put `percent` off the whole cart; above the cashier limit only with a supervisor."""
        tr = self._ctx.tr
        staff = self._ctx.session.staff
        if staff is None:
            return self._require_staff()
        if self._cart.refuses_changes():
            return False
        if not 0 < percent <= 100:
            self._say(tr._("A discount is from 1 to 100 percent."))
            return False
        approved = approver is not None and approver.is_supervisor
        if not may_discount(staff, percent, self._cashier_limit) and not approved:
            self._say(tr._("A supervisor must approve this discount."))
            return False
        reason = f"by {staff.staff_id}" + (f", approved by {approver.staff_id}" if approver else "")
        try:
            self._ctx.checkout.discount_all(Discount.percent(percent * PERCENT, reason))
        except ApplianceError as err:
            self._say(customer_message(tr, err))
            return False
        log.info("%d%% cart discount %s", percent, reason)
        return True

    def clear_discount(self) -> None:
        """Take the cart discount off."""
        if self._cart.refuses_changes():
            return
        try:
            self._ctx.checkout.discount_all(None)
        except ApplianceError as err:
            self._say(customer_message(self._ctx.tr, err))

    @property
    def cashier_limit(self) -> int:
        """The largest cart discount in percent a cashier may give alone."""
        return self._cashier_limit

    @property
    def _cashier_limit(self) -> int:
        return self._ctx.settings.screen.cashier_discount_percent

    # -- park, drawer, logout ---------------------------------------------------------------

    def park(self, label: str) -> bool:
        """Put the cart aside under `label` (may be empty); the till empties once it is stored.

        The write runs on the writer thread; until it is done the cart is held, so a scan
        in between cannot land in a cart that is about to leave the till.
        """
        tr = self._ctx.tr
        checkout = self._ctx.checkout
        if checkout.cart.is_empty:
            self._say(tr._("There is nothing to park."))
            return False
        if self._cart.refuses_changes():
            return False
        cart, total, staff_id = checkout.cart, checkout.totals().total, self._ctx.session.staff_id
        self._cart.held = tr._("Wait a moment: the cart is being parked.")
        self._ctx.writes.run(
            lambda: self._parked.park(cart, label=label, staff_id=staff_id, total=total),
            lambda parked, error: self._parked_done(cart, parked, error),
        )
        return True

    def _parked_done(
        self, cart: Cart, parked: ParkedCart | None, error: ApplianceError | None
    ) -> None:
        """Back on the main thread: empty the till, or keep the cart and say why not."""
        tr = self._ctx.tr
        self._cart.held = ""
        if parked is None:
            self._say(customer_message(tr, error or StoreError("the cart was not parked")))
            return
        if self._ctx.checkout.cart is not cart:  # changed meanwhile, not by a scan (held)
            log.warning("cart %s parked while the till's cart changed", parked.park_id)
        self._ctx.checkout.cancel()
        self.selected = -1
        name = parked.label or tr.datetime(parked.parked_at.astimezone())
        self._ctx.session.say(tr._("Cart parked as {name}.").format(name=name))

    def no_sale(self, reason: str) -> bool:
        """Open the drawer without a sale; recorded with the reason and who did it."""
        tr = self._ctx.tr
        if not self._require_staff():
            return False
        if reason not in NO_SALE_REASONS:
            raise ValueError(f"unknown no-sale reason {reason!r}")
        opening = DrawerOpening("no_sale", staff=self._ctx.session.staff_id, reference=reason)
        if not self._ctx.services.after_sale.kick_drawer(opening):
            self._say(tr._("There is no cash drawer on this till."))
            return False
        self._ctx.session.say(
            tr._("Drawer opened: {reason}.").format(reason=no_sale_reason_text(tr, reason))
        )
        return True

    def logout(self) -> None:
        """Log out; refused while a sale is open, so no cart is left without its cashier."""
        if not self._ctx.checkout.cart.is_empty:
            self._say(self._ctx.tr._("Finish or park the sale before logging out."))
            return
        self.selected = -1
        self._ctx.session.logout()

    # -- state ------------------------------------------------------------------------------

    def _require_staff(self) -> bool:
        if self._ctx.session.staff is None:
            self._say(self._ctx.tr._("Please log in first."))
            return False
        return True

    def _say(self, text: str) -> None:
        self._ctx.session.say(text, "warning")

    def _rebuild(self) -> None:
        rows = self._cart.rows
        if self.selected >= 0 and not any(r["line_id"] == self.selected for r in rows):
            self.selected = -1  # the chosen line was removed
        self.rows = [dict(row, selected=row["line_id"] == self.selected) for row in rows]

    def _staff_changed(self) -> None:
        tr = self._ctx.tr
        staff = self._ctx.session.staff
        self.logged_in = staff is not None
        if staff is None:
            self.staff_text = tr._("Nobody is logged in")
        else:
            self.staff_text = tr._("{name}, {role}").format(
                name=staff.name, role=role_name(tr, staff.role)
            )
        self._discount_changed()

    def _discount_changed(self) -> None:
        checkout = self._ctx.checkout
        discount = checkout.cart.discount
        if discount is None:
            self.discount_percent = 0
            self.discount_text = ""
            return
        tr = self._ctx.tr
        amount = tr.money(-checkout.totals().cart_discount, checkout.cart.currency)
        if discount.kind == "percent":
            self.discount_percent = discount.value // PERCENT
            self.discount_text = tr._("{percent} % off the cart: {amount}").format(
                percent=self.discount_percent, amount=amount
            )
        else:
            self.discount_percent = 0
            self.discount_text = tr._("Cart discount: {amount}").format(amount=amount)
