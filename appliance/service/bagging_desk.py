"""The bagging-area check at work: the cart and the bagging scale in, alerts and help out.

It feeds the core's BaggingCheck with what the kiosk sees (a line added or taken off the
cart, with the product's expected weight; each settled weight the BaggingWatch posts;
time passing), and acts on what it says: an alert is logged with the weights and counted
for telemetry, and while enforcing, it opens a call for help with reason "bagging". Staff
clearing it at the kiosk (or any badge that deals with the kiosk's calls) are recorded with
their name. Each change is posted as BaggingChanged for the screens.

Weights are not fed while the customer pays (the payment screen says so through
`paying()`) or the sale is being committed: the cart cannot change then, and a sale must
never be stopped at the terminal for a bag moved. The last one is kept and fed once the
payment is over (customers take their bags while they pay: the next sale must start
from the bag as it is, not as it was). Main thread only, except `counts()`, which the
telemetry thread reads.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.core.bagging import (
    BaggingChanged,
    BaggingCheck,
    BaggingStatus,
    BaggingWeighed,
    BagItem,
    StaffAction,
)
from appliance.core.cart import CartLine
from appliance.core.catalog import CatalogLookup
from appliance.core.checkout import CartChanged, Checkout
from appliance.core.devices import DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.core.help_calls import BY_KIOSK, HelpCallChanged
from appliance.core.remote_approval import approval_note
from appliance.core.staff import StaffMember
from appliance.mqtt.payloads import BaggingReport

if TYPE_CHECKING:
    from appliance.service.assembly import Appliance

log = logging.getLogger(__name__)

BY_CUSTOMER = "customer"  # the customer put it right before anyone came


@dataclass(frozen=True, slots=True)
class _Line:
    sku: str
    name: str
    measure: str
    quantity: int


class BaggingDesk:
    """Drives the kiosk's BaggingCheck from bus events; staff act through `staff()`."""

    def __init__(
        self,
        check: BaggingCheck,
        checkout: Checkout,
        catalog: CatalogLookup,
        bus: EventBus,
        *,
        monotonic: Callable[[], float],
        call_help: Callable[[str], object],
        clear_help: Callable[[str], object],
        scale: str = "",
        scale_online: bool = True,
    ) -> None:
        self._check = check
        self._checkout = checkout
        self._catalog = catalog
        self._bus = bus
        self._monotonic = monotonic
        self._call_help = call_help  # (detail) -> opens the "bagging" call
        self._clear_help = clear_help  # (by) -> clears it
        self._lines = self._snapshot()
        self._generation = checkout.generation
        self._status = check.status
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._clearing = False  # our own clear of the help call is not staff arriving
        self._held: int | None = None  # the last weight seen while a payment ran
        self._at_payment = False  # the customer is on the payment screen
        bus.subscribe(CartChanged, self._cart_changed)
        bus.subscribe(BaggingWeighed, self._weighed)
        bus.subscribe(HelpCallChanged, self._help_changed)
        self._scale = scale  # the bagging scale's device name: its health suspends the check
        bus.subscribe(DeviceHealthChanged, self._scale_health)
        if not scale_online:
            self._suspend("is not available")

    @property
    def status(self) -> BaggingStatus:
        """What the check says now."""
        return self._status

    def counts(self) -> dict[str, int]:
        """Alerts and interventions since start, by kind (for telemetry); any thread."""
        with self._lock:
            return dict(self._counts)

    def tick(self) -> BaggingStatus:
        """Time passed (the screen's clock calls this): a late item prompts, then alerts."""
        self._catch_up()
        return self._apply(self._check.tick(self._monotonic()))

    def paying(self, at_payment: bool) -> None:
        """The customer went to pay (weights wait) or came back from it (they count again)."""
        self._at_payment = at_payment
        self._catch_up()

    def staff(self, action: StaffAction, member: StaffMember, *, via: str = "") -> BaggingStatus:
        """A member of staff cleared the alert, or skipped the bagging check: at the kiosk,
        or remotely from the staff device `via` (the call records that)."""
        before = self._status
        log.warning(
            "bagging: %s by staff %s (%s, %s)%s at %s: %d g on the scale, %d g expected,"
            " waiting for %s",
            action,
            member.staff_id,
            member.name,
            member.role,
            f" remotely from {via}" if via else "",
            before.state,
            before.weight,
            before.accepted,
            _names(before) or "nothing",
        )
        self._count(action)
        status = self._apply(self._check.staff(action, self._monotonic()), quiet=True)
        by = approval_note(member.name, member.staff_id, member.role, via) if via else member.name
        self._clear(by)
        who = approval_note(member.name, member.staff_id, member.role, via)
        self._checkout.note_approval(f"bagging {action.replace('_', ' ')}: {who}")
        return status

    # --- bus handlers (main thread) ---

    def _cart_changed(self, _event: CartChanged) -> None:
        now = self._monotonic()
        lines = self._snapshot()
        if self._checkout.generation != self._generation:
            # Paid, cancelled, parked or fetched: the next sale starts from the bag as it is.
            self._generation = self._checkout.generation
            self._lines = lines
            self._apply(self._check.new_sale(now))
            self._clear(BY_KIOSK)
            self._catch_up()
            return
        before, self._lines = self._lines, lines
        for line_id, line in lines.items():
            old = before.get(line_id)
            if old is None:
                self._apply(self._check.added(self._item(line, line.quantity), now))
            elif line.quantity > old.quantity:
                self._apply(self._check.added(self._item(line, line.quantity - old.quantity), now))
            elif line.quantity < old.quantity:
                self._apply(self._check.voided(self._item(line, old.quantity - line.quantity), now))
        for line_id, old in before.items():
            if line_id not in lines:
                self._apply(self._check.voided(self._item(old, old.quantity), now))

    def _scale_health(self, event: DeviceHealthChanged) -> None:
        health = event.health
        if health.device != self._scale:
            return
        if health.state != "ok":  # offline, or not answering: nothing to judge a bag by
            self._suspend(
                f"is {health.state} ({health.reason})" if health.reason else f"is {health.state}"
            )
        elif self._status.state == "suspended":
            log.warning("bagging: the bagging scale is back: the bagging area is checked again")
            self._apply(self._check.resume(self._monotonic()), quiet=True)

    def _suspend(self, why: str) -> None:
        """The scale is out of order: no customer waits for it, and no call stays open for it."""
        if self._status.state == "suspended":
            return
        log.warning(
            "bagging: the bagging scale %s: the bagging area is not checked until it is back", why
        )
        self._apply(self._check.suspend(self._monotonic()), quiet=True)
        self._clear(BY_KIOSK)

    def _weighed(self, event: BaggingWeighed) -> None:
        if self._paying_now:
            self._held = event.grams  # see the module docstring
            return
        self._held = None
        self._apply(self._check.weighed(event.grams, self._monotonic()))

    @property
    def _paying_now(self) -> bool:
        return self._at_payment or self._checkout.paying

    def _catch_up(self) -> None:
        """Feed the weight held back while the customer paid, once they no longer do."""
        if self._held is not None and not self._paying_now:
            grams, self._held = self._held, None
            self._apply(self._check.weighed(grams, self._monotonic()))

    def _help_changed(self, event: HelpCallChanged) -> None:
        call = event.call
        if call.reason != "bagging" or call.state != "cleared" or self._clearing:
            return
        if self._status.alert:
            # A badge that dealt with every call at the kiosk (the age check's): staff are
            # here and have seen the bag.
            log.warning(
                "bagging: cleared by %s with the kiosk's calls at %s: %d g, %d g expected",
                call.by,
                self._status.state,
                self._status.weight,
                self._status.accepted,
            )
            self._count("clear")
            self._apply(self._check.staff("clear", self._monotonic()), quiet=True)

    # --- the rules ---

    def _apply(self, status: BaggingStatus, *, quiet: bool = False) -> BaggingStatus:
        before, self._status = self._status, status
        if status == before:
            return status
        if status.alert and status.state != before.state:
            self._alerted(status)
        elif before.alert and not status.alert and not quiet:
            log.info(
                "bagging: %s put right by the customer: %d g, %d g expected",
                before.state,
                status.weight,
                status.accepted,
            )
            self._count("put_right")
            self._clear(BY_CUSTOMER)
        elif status.state == "prompting" and before.state != "prompting":
            log.info("bagging: the customer is reminded to bag %s", _names(status))
        self._bus.post(BaggingChanged(status))
        return status

    def _alerted(self, status: BaggingStatus) -> None:
        detail = (
            f"{status.state.replace('_', ' ')}: {status.weight} g on the scale,"
            f" {status.accepted} g expected"
            + (f", waiting for {_names(status)}" if status.pending else "")
        )
        log.warning(
            "bagging: %s (%s)%s", detail, status.mode, "" if status.pauses else ": logged only"
        )
        self._count(status.state)
        if status.pauses:
            self._call_help(detail)

    def _clear(self, by: str) -> None:
        self._clearing = True
        try:
            self._clear_help(by)
        finally:
            self._clearing = False

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _snapshot(self) -> dict[int, _Line]:
        return {
            line.line_id: _Line(line.sku, line.name, line.measure, line.quantity)
            for line in self._checkout.cart.lines
        }

    def _item(self, line: _Line | CartLine, quantity: int) -> BagItem:
        """What `quantity` of a line should weigh in the bag."""
        if line.measure != "each":
            return BagItem(line.sku, line.name, grams=quantity)  # a weight line is in grams
        product = self._catalog.by_sku(line.sku)
        grams = product.bag_grams if product is not None else None
        tolerance = product.bag_tolerance if product is not None else None
        if grams is None:
            return BagItem(line.sku, line.name)
        return BagItem(
            line.sku,
            line.name,
            grams=grams * quantity,
            tolerance=None if tolerance is None else tolerance * quantity,
        )


def bagging_report(app: Appliance) -> BaggingReport | None:
    """The check's counts for telemetry (None: not checked); the telemetry thread calls it."""
    desk = app.bagging
    if desk is None:
        return None
    counts = desk.counts()
    return BaggingReport(
        mode=desk.status.mode,
        unexpected_item=counts.get("unexpected_item", 0),
        item_removed=counts.get("item_removed", 0),
        not_bagged=counts.get("not_bagged", 0),
        put_right=counts.get("put_right", 0),
        cleared=counts.get("clear", 0),
        skipped_item=counts.get("skip_item", 0),
        skipped_sale=counts.get("skip_sale", 0),
    )


def _names(status: BaggingStatus) -> str:
    return ", ".join(item.name for item in status.pending)
