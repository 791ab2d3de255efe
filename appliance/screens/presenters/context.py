"""What every presenter is built with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance.core.checkout import Checkout
from appliance.core.events import EventBus
from appliance.screens.i18n import Translator
from appliance.screens.presenters.store_writes import StoreWrites
from appliance.service.lifecycle import Running
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.screens.presenters.session import KioskSession


@dataclass(frozen=True)
class ScreenContext:
    """The running appliance, the session every screen shares, and the translator."""

    services: Running
    session: KioskSession
    tr: Translator
    writes: StoreWrites  # sales and refunds are stored on its thread, never in a frame
    # Presenters by name, as they are built; a presenter may use those built before it.
    presenters: dict[str, Any] = field(default_factory=dict)

    @property
    def bus(self) -> EventBus:
        """The main loop's event bus (drained every frame)."""
        return self.services.app.bus

    @property
    def checkout(self) -> Checkout:
        """The till's cart and payment use case."""
        return self.services.app.checkout

    @property
    def settings(self) -> Settings:
        """The whole configuration."""
        return self.services.app.settings
