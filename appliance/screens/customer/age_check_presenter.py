"""Age-restricted items wait for a member of staff before the customer may pay."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import NumericProperty

from appliance.core.devices import CardTapped
from appliance.core.staff import StaffMember
from appliance.errors import DomainError
from appliance.screens.customer.staff_pin_presenter import StaffCheck
from appliance.screens.presenters.cart import CartPresenter
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter
from appliance.screens.presenters.messages import customer_message
from appliance.service.kiosk_approvals import RemotelyAnswered

log = logging.getLogger(__name__)

SCREEN = "age_check"
# Staff may check the ID while the customer still shops: a badge there approves at once.
BASKET_SCREENS = ("shop", "browse")


class AgeCheckPresenter(EventDispatcher):
    """How many items wait for an ID check, and the ways on: approval, removal, back."""

    count = NumericProperty(0)

    def __init__(
        self,
        ctx: ScreenContext,
        cart: CartPresenter,
        router: InputRouter,
        staff: StaffCheck,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._cart = cart
        self._staff = staff
        self._shown = False
        router.on_tap(SCREEN, self._tapped)
        for screen in BASKET_SCREENS:
            router.on_tap(screen, self._tapped_at_basket)
        ctx.session.bind(screen=self._screen_changed)
        ctx.bus.subscribe(RemotelyAnswered, self._answered_remotely)

    def remove_restricted(self) -> None:
        """Take the items that need an ID check off the cart, and go on without them."""
        cart = self._cart
        for line in self._ctx.checkout.cart.pending_age_checks:
            cart.remove(line.line_id)
        self._ctx.session.go("shop" if self._ctx.checkout.cart.is_empty else "payment")

    def back(self) -> None:
        """Back to the basket."""
        self._ctx.session.go("shop")

    def _screen_changed(self, _session: Any, screen: str) -> None:
        if screen == SCREEN:
            self._shown = True
            self.count = sum(
                line.quantity if line.measure == "each" else 1
                for line in self._ctx.checkout.cart.pending_age_checks
            )
            self._staff.start(self._approved)
        elif self._shown:
            self._shown = False
            self._staff.stop()

    def _tapped(self, event: CardTapped) -> None:
        self._staff.badge(event.uid)

    def _tapped_at_basket(self, event: CardTapped) -> None:
        if not self._ctx.checkout.cart.pending_age_checks:
            log.info("card %s ignored: no item waits for an ID check", event.uid)
            return
        member = self._ctx.stores.staff.by_badge(event.uid)
        if member is None:
            log.info("card %s is not a staff badge", event.uid)
            self._ctx.session.say(self._ctx.tr._("This card is not a staff badge."), "warning")
            return
        self._approve(member)

    def _answered_remotely(self, event: RemotelyAnswered) -> None:
        """Staff approved the age check from a tablet: the customer goes on to pay."""
        if event.reason != "age_check":
            return
        self._cart.refresh()
        self._ctx.session.say(self._ctx.tr._("Approved by {name}.").format(name=event.name))
        if self._ctx.session.screen == SCREEN and not self._ctx.checkout.cart.pending_age_checks:
            self._ctx.session.go("payment")

    def _approved(self, member: StaffMember) -> None:
        if self._approve(member):
            self._ctx.session.go("payment")

    def _approve(self, member: StaffMember) -> bool:
        try:
            self._ctx.checkout.approve_age(member.staff_id)
        except DomainError as err:
            self._ctx.session.say(customer_message(self._ctx.tr, err), "warning")
            return False
        log.info("age check approved by staff %s", member.staff_id)
        if (desk := self._ctx.services.app.help_desk) is not None:
            desk.staff_arrived(member.name)  # staff are at the kiosk: its calls are dealt with
        self._cart.refresh()
        self._ctx.session.say(self._ctx.tr._("Approved by {name}.").format(name=member.name))
        return True
