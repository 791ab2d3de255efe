"""The kiosk session: which screen is up, the language, the lock, who is logged in."""

from __future__ import annotations

import logging
from typing import Any

from kivy.clock import Clock, ClockEvent
from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    ObjectProperty,
    OptionProperty,
    StringProperty,
)

from appliance.core.events import KioskLockChanged
from appliance.core.staff import StaffMember
from appliance.core.storage import StorageChanged, StorageStatus
from appliance.screens.i18n import Translator
from appliance.service.lifecycle import Running

log = logging.getLogger(__name__)

MESSAGE_SECONDS = 6.0
LOCKED_SCREEN = "locked"
OUT_OF_ORDER_SCREEN = "out_of_order"


class KioskSession(EventDispatcher):
    """State every screen shares; the ScreenManager follows `screen`."""

    screen = StringProperty("")
    mode = OptionProperty("kiosk", options=["kiosk", "staff"])
    language = StringProperty("en")
    languages = ListProperty()
    locked = BooleanProperty(False)
    # Why the data partition cannot take a new sale (staff's words), or "" while it can.
    storage_problem = StringProperty("")
    # Set while a payment is with the terminal: the idle reset must not clear a paying cart.
    busy = BooleanProperty(False)
    message = StringProperty("")
    message_kind = OptionProperty("info", options=["info", "warning", "error"])
    staff: StaffMember | None = ObjectProperty(None, allownone=True)
    # The document the receipt screen offers (set by whoever committed it: card, cash, refund).
    last_sale_id = StringProperty("")

    def __init__(self, services: Running, tr: Translator, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.tr = tr
        settings = services.app.settings
        self.mode = settings.screen.mode
        self.languages = list(settings.screen.languages)
        self._store_locale = settings.store.locale
        self._message_timer: ClockEvent | None = None
        self.set_language(self.languages[0])
        hub = services.hub
        fleet = getattr(hub, "fleet", None) if hub is not None else None
        self.locked = bool(fleet is not None and fleet.lock.locked)
        services.app.bus.subscribe(KioskLockChanged, self._lock_changed)
        self._storage(services.app.storage.status)
        services.app.bus.subscribe(StorageChanged, lambda event: self._storage(event.status))

    @property
    def home(self) -> str:
        """Where a finished or abandoned sale returns to."""
        if self.locked:
            return LOCKED_SCREEN
        if self.storage_problem and self.mode == "kiosk":
            return OUT_OF_ORDER_SCREEN
        if self.mode == "staff":
            return "till" if self.staff is not None else "staff_login"
        return "welcome"

    def go(self, screen: str) -> None:
        """Show a screen; a locked kiosk shows only the lock, staff screens stay reachable."""
        if self.locked and self.mode == "kiosk" and not screen.startswith("staff"):
            screen = LOCKED_SCREEN
        log.debug("screen %s -> %s", self.screen, screen)
        self.screen = screen

    def go_home(self) -> None:
        """Back to the start: welcome, the staff till or the lock."""
        self.go(self.home)

    def reset(self) -> None:
        """Abandon the sale in progress (the customer walked away) and go home."""
        checkout = self.services.app.checkout
        if checkout.paying:
            # The cart is held by its sale on the writer thread, which empties it when stored.
            log.info("reset while the cart is being paid: the cart is left to its sale")
        elif not checkout.cart.is_empty:
            log.info("cart of %d lines cleared by reset", len(checkout.cart.lines))
            checkout.cancel()
        self.clear_message()
        if self.mode == "kiosk":
            self.set_language(self.languages[0])
        self.go_home()

    def set_language(self, language: str) -> None:
        """Switch the screen's language and the locale money and dates are shown in."""
        self.tr.switch(language, self._store_locale)
        self.language = language

    @property
    def staff_id(self) -> str:
        """Who is logged in, for the documents they make; "" at a self-checkout."""
        return self.staff.staff_id if self.staff is not None else ""

    def finished(self, sale_id: str) -> None:
        """A document was committed: offer its receipt."""
        self.last_sale_id = sale_id
        self.go("receipt")

    def say(self, text: str, kind: str = "info", seconds: float = MESSAGE_SECONDS) -> None:
        """Show a message banner for a while."""
        self.message_kind = kind
        self.message = text
        if self._message_timer is not None:
            self._message_timer.cancel()
        self._message_timer = Clock.schedule_once(lambda _dt: self.clear_message(), seconds)

    def clear_message(self) -> None:
        """Hide the message banner."""
        self.message = ""

    def login(self, member: StaffMember) -> None:
        """A staff member logged in (PIN or badge)."""
        log.info("staff %s (%s) logged in", member.staff_id, member.role)
        self.staff = member

    def logout(self) -> None:
        """The staff member logged out; staff mode returns to the login screen."""
        if self.staff is not None:
            log.info("staff %s logged out", self.staff.staff_id)
        self.staff = None
        self.go_home()

    def _storage(self, status: StorageStatus) -> None:
        """A sale in progress finishes; home becomes "out of order" until the storage is back."""
        self.storage_problem = "" if status.accepting_sales else status.describe()
        if self.mode != "kiosk":
            return
        # Only from the screens no sale is on: a customer mid-sale is never cut off.
        idle_screen = OUT_OF_ORDER_SCREEN if not self.storage_problem else "welcome"
        if self.screen == idle_screen:
            self.go_home()

    def _lock_changed(self, event: KioskLockChanged) -> None:
        self.locked = event.locked
        if event.locked:
            if self.mode == "kiosk":
                self.go(LOCKED_SCREEN)
        elif self.screen == LOCKED_SCREEN:
            self.go_home()
