"""The bagging area as the customer meets it: a reminder, and a pause that staff clear.

While the check is enforced, an alert takes the customer from the basket to the bagging
screen, which says what happened in plain words and that help is on the way; scanning and
paying wait there. It returns to the basket by itself once the bag is put right, or when
a member of staff (badge or PIN) clears it or skips bagging for the item or the sale.
In log-only mode nothing here changes what the customer sees.
"""

from __future__ import annotations

import logging
from typing import Any

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, StringProperty

from appliance.core.bagging import BaggingChanged, BaggingStatus, StaffAction
from appliance.core.devices import CardTapped
from appliance.core.staff import StaffMember
from appliance.screens.customer.staff_pin_presenter import StaffCheck
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter
from appliance.screens.presenters.lifecycle import when_app_stops, while_app_runs

log = logging.getLogger(__name__)

SCREEN = "bagging"
# An alert takes the customer off these screens; elsewhere (paying) it never interrupts.
BASKET_SCREENS = ("shop", "browse")
PAYMENT_SCREEN = "payment"  # the bag may move while the customer pays: never an alert
TICK_SECONDS = 0.5  # late items are reminded, then called for, at this resolution


class BaggingPresenter(EventDispatcher):
    """What the bagging screen says, whether pay must wait, and the staff's choices."""

    state = StringProperty("settled")
    headline = StringProperty("")
    waiting = BooleanProperty(False)  # scanned items wait to be bagged: Pay waits too
    approver = StringProperty("")  # the member of staff who vouched, choosing what to do

    def __init__(
        self, ctx: ScreenContext, router: InputRouter, staff: StaffCheck, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._staff = staff
        self._member: StaffMember | None = None
        self._shown = False
        desk = ctx.services.app.bagging
        if desk is None:
            return  # the store checks no bagging area: this presenter stays quiet
        ctx.bus.subscribe(BaggingChanged, while_app_runs(lambda event: self._show(event.status)))
        router.on_scan(SCREEN, self._scanned)
        router.on_tap(SCREEN, self._tapped)
        ctx.session.bind(screen=self._screen_changed, language=lambda *_a: self._show())
        timer = Clock.schedule_interval(lambda _dt: desk.tick(), TICK_SECONDS)
        when_app_stops(timer.cancel)
        self._show(desk.status)

    def clear(self) -> None:
        """Staff: the bag is right as it is."""
        self._act("clear")

    def skip_item(self) -> None:
        """Staff: the items waiting will not be bagged (too big, in the trolley)."""
        self._act("skip_item")

    def skip_sale(self) -> None:
        """Staff: no more bagging checks for this customer's sale."""
        self._act("skip_sale")

    def _act(self, action: StaffAction) -> None:
        desk, member = self._ctx.services.app.bagging, self._member
        if desk is None or member is None:
            return
        self._member, self.approver = None, ""
        desk.staff(action, member)
        self._ctx.session.go("shop")

    def _show(self, status: BaggingStatus | None = None) -> None:
        desk = self._ctx.services.app.bagging
        if desk is None:
            return
        status = status or desk.status
        self.state = status.state
        self.waiting = status.waiting
        self.headline = self._headline(status)
        session = self._ctx.session
        if status.pauses and session.screen in BASKET_SCREENS:
            session.go(SCREEN)
        elif not status.pauses and session.screen == SCREEN:
            session.go("shop")
        elif status.prompts and session.screen in BASKET_SCREENS:
            session.say(self._ctx.tr._("Please put your item in the bagging area."), "info")

    def _headline(self, status: BaggingStatus) -> str:
        tr = self._ctx.tr
        if status.state == "unexpected_item":
            return tr._("Unexpected item in the bagging area: please remove it, or wait for help.")
        if status.state == "item_removed":
            return tr._("An item was taken from the bagging area: please put it back.")
        if status.state == "not_bagged":
            return tr._("Please put your item in the bagging area.")
        return ""

    def _screen_changed(self, _session: Any, screen: str) -> None:
        desk = self._ctx.services.app.bagging
        if desk is not None:
            desk.paying(screen == PAYMENT_SCREEN)
        if screen == SCREEN:
            self._shown = True
            self._member, self.approver = None, ""
            self._staff.start(self._vouched)
        elif self._shown:
            self._shown = False
            self._member, self.approver = None, ""
            self._staff.stop()

    def _vouched(self, member: StaffMember) -> None:
        log.info("bagging: staff %s at the kiosk", member.staff_id)
        self._member = member
        self.approver = member.name

    def _tapped(self, event: CardTapped) -> None:
        self._staff.badge(event.uid)

    def _scanned(self, code: str) -> None:
        log.info("scan %s waits: the bagging area needs checking", code)
        self._ctx.session.say(
            self._ctx.tr._("One moment, please: the bagging area needs checking first."),
            "warning",
        )
