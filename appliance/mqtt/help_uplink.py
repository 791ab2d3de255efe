"""HelpUplink: the kiosk's calls for help to the hub, on each change and again when ready.

A call sent while the link was down is lost (QoS 1 lives in paho's memory only), so each
time the link is ready again (connected, the hub online) the active calls go again, and
so does the last change of any call that could not be sent (a call cleared offline):
the hub keeps the latest state of each call and takes a repeat as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from appliance.core.events import Event, EventBus
from appliance.core.help_calls import HelpCall, HelpCallChanged
from appliance.mqtt import payloads, topics
from appliance.mqtt.link import HubLink, LinkState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HelpSessionStarted(Event):
    """The link is ready again (a connect, or the hub back online): active calls go again."""

    session: int


def help_payload(device: str, call: HelpCall) -> payloads.HelpCall:
    """The wire form of one call."""
    return payloads.HelpCall(
        device=device,
        id=call.id,
        reason=call.reason,
        urgency=call.urgency,
        state=call.state,
        opened_at=_iso(call.opened_at),
        cleared_at=_iso(call.cleared_at),
        by=call.by,
        detail=call.detail,
    )


class HelpUplink:
    """Publishes HelpCallChanged on help_up; the bus's thread publishes, paho's only posts."""

    def __init__(
        self, link: HubLink, bus: EventBus, active: Callable[[], tuple[HelpCall, ...]]
    ) -> None:
        self._link = link
        self._bus = bus
        self._active = active
        self._ready = False  # paho's thread only
        self._unsent: dict[str, HelpCall] = {}  # the bus's thread only: id -> last change
        bus.subscribe(HelpCallChanged, lambda event: self._send(event.call))
        bus.subscribe(HelpSessionStarted, lambda _event: self.resend())
        link.watch(self._state_changed)

    def resend(self) -> None:
        """Send every active call again, and what could not be sent before."""
        calls = {**self._unsent, **{call.id: call for call in self._active()}}
        self._unsent.clear()
        for call in calls.values():
            self._send(call)

    def _send(self, call: HelpCall) -> None:
        device = self._link.device_id
        data = payloads.encode(help_payload(device, call))
        if self._link.publish(topics.help_up(device), data, qos=1):
            self._unsent.pop(call.id, None)
            return
        self._unsent[call.id] = call
        log.info("hub link down: call for help %s (%s) goes when it is up", call.id, call.state)

    def _state_changed(self, state: LinkState) -> None:
        # paho's thread: only post. Again whenever the link becomes ready (a connect, or
        # the hub back online): a call sent while no hub worker listened reached nobody.
        if state.ready and not self._ready:
            self._bus.post(HelpSessionStarted(state.session))
        self._ready = state.ready


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at is not None else ""
