"""What every presenter is built with: the running appliance, the shared session, the translator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.core.checkout import Checkout
from appliance.core.events import EventBus
from appliance.screens.i18n import Translator
from appliance.screens.presenters.store_writes import StoreWrites
from appliance.service.assembly import Stores
from appliance.service.lifecycle import Running
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.screens.presenters.session import KioskSession


@dataclass(frozen=True)
class ScreenContext:
    """The running appliance, the session every screen shares, and the translator.

    Presenters that use one another get each other as constructor arguments (see
    `appliance.screens.presenter_set`), never through this context.
    """

    services: Running
    session: KioskSession
    tr: Translator
    writes: StoreWrites  # sales and refunds are stored on its thread, never in a frame

    @property
    def bus(self) -> EventBus:
        """The main loop's event bus (drained every frame)."""
        return self.services.app.bus

    @property
    def checkout(self) -> Checkout:
        """The till's cart and payment use case."""
        return self.services.app.checkout

    @property
    def stores(self) -> Stores:
        """The store objects the assembly built once (staff, parked carts, outbox...)."""
        return self.services.app.stores

    @property
    def settings(self) -> Settings:
        """The whole configuration."""
        return self.services.app.settings
