"""The help board: each store's open calls for help, sent to the store's staff devices.

A device says in its birth which screen it runs (`DeviceStatus.screen`); the hub keeps it
(`device_screen`). A birth is only the device's own word, and a kiosk in a public place
may be taken apart: a device is a staff device only when it says so *and* an admin made
it one (`appliance-hub fleet staff-device DEVICE`, `staff_device_grant`). A staff device
(a staffed till or tablet) gets its store's calls not cleared yet, whole, on its own
`down/help-calls` topic, so the broker's ACL (a device reads only its own subtree) keeps
every store's calls to its own staff. The board goes again:

- at each birth of the staff device (its view is current after every reconnect);
- at each change of a call of the store (the worker's handler of up/help);
- at each birth or will of another device of the store (the board lists who is offline).

Several workers may send boards of one store out of order, so each says when the hub read
the calls (`at`) and a staff device keeps the newest. Not retained: a board from before a
restart would show calls long cleared, and every birth brings a fresh one anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import cast

from peewee import CharField, Database, SchemaManager

from appliance.core.clock import Clock, SystemClock
from appliance.mqtt import topics
from appliance.mqtt.payloads import (
    DeviceStatus,
    HelpBoard,
    HelpCall,
    HelpReason,
    HelpState,
    HelpUrgency,
    encode,
)
from hub.help_calls import open_calls
from hub.models import Device, HubModel
from hub.stores import DeviceStore, store_of

log = logging.getLogger(__name__)

STAFF = "staff"

Publish = Callable[[str, bytes], None]  # (topic, payload), QoS 1, not retained


class DeviceScreen(HubModel):
    """The screen a device said it runs in its last birth: kiosk or staff."""

    device = CharField(primary_key=True, max_length=128)
    screen = CharField(max_length=8)

    class Meta:
        table_name = "device_screen"


class StaffDeviceGrant(HubModel):
    """A device an admin made a staff device: it may see its store's calls and approve."""

    device = CharField(primary_key=True, max_length=128)

    class Meta:
        table_name = "staff_device_grant"


def create_screen_table(db: Database) -> None:
    """Migration 14: the screen each device runs, from its birth, and the admins' grants."""
    SchemaManager(DeviceScreen, database=db).create_all(safe=True)
    SchemaManager(StaffDeviceGrant, database=db).create_all(safe=True)


def grant_staff_device(db: Database, device: str, *, granted: bool = True) -> None:
    """Make `device` a staff device (an admin's decision), or no longer one."""
    if granted:
        StaffDeviceGrant.insert(device=device).on_conflict_ignore().execute(db)
    else:
        StaffDeviceGrant.delete().where(StaffDeviceGrant.device == device).execute(db)


def record_screen(db: Database, device: str, screen: str) -> None:
    """Keep the screen a birth announced ("" from older devices changes nothing)."""
    if not screen:
        return
    DeviceScreen.insert(device=device, screen=screen).on_conflict(
        conflict_target=[DeviceScreen.device], preserve=[DeviceScreen.screen]
    ).execute(db)


def is_staff_device(db: Database, device: str) -> bool:
    """Whether an admin made the device a staff device and its last birth says it runs one."""
    query = (
        DeviceScreen.select(DeviceScreen.screen)
        .join(StaffDeviceGrant, on=StaffDeviceGrant.device == DeviceScreen.device)
        .where(DeviceScreen.device == device)
    )
    return bool(query.scalar(db) == STAFF)


def staff_devices(db: Database, store: str) -> list[str]:
    """The staff devices of a store, sorted."""
    query = (
        DeviceStore.select(DeviceStore.device)
        .join(DeviceScreen, on=DeviceScreen.device == DeviceStore.device)
        .join(StaffDeviceGrant, on=StaffDeviceGrant.device == DeviceStore.device)
        .where((DeviceStore.store == store) & (DeviceScreen.screen == STAFF))
        .order_by(DeviceStore.device)
        .tuples()
    )
    return [str(device) for (device,) in query.execute(db)]


def board_of(db: Database, store: str, clock: Clock) -> HelpBoard:
    """The store's board now: its calls not cleared, and its devices that are offline."""
    calls = [
        HelpCall(
            device=view.device,
            id=view.id,
            # The hub stored what a HelpCall decoded to: these are its literals.
            reason=cast(HelpReason, view.reason),
            urgency=cast(HelpUrgency, view.urgency),
            state=cast(HelpState, view.state),
            opened_at=view.opened_at,
            by=view.by,
            detail=view.detail,
        )
        for view in open_calls(db, store)
    ]
    offline = (
        DeviceStore.select(DeviceStore.device)
        .join(Device, on=Device.id == DeviceStore.device)
        .where((DeviceStore.store == store) & ~Device.online)
        .order_by(DeviceStore.device)
        .tuples()
    )
    return HelpBoard(
        store=store,
        at=clock.now().astimezone(UTC).isoformat(),
        calls=calls,
        offline=[str(device) for (device,) in offline.execute(db)],
    )


class HelpBoards:
    """Sends boards to staff devices; runs on the hub worker thread (publish is thread-safe)."""

    def __init__(self, db: Database, publish: Publish, *, clock: Clock | None = None) -> None:
        self._db = db
        self._publish = publish
        self._clock = clock or SystemClock()

    def on_status(self, device: str, status: DeviceStatus) -> None:
        """After a current birth or will: keep the screen; send the boards it changes."""
        if status.online:
            record_screen(self._db, device, status.screen)
        store = store_of(self._db, device)
        if store is None:
            return
        if status.online and is_staff_device(self._db, device):
            self._send(store, [device])  # a staff device (re)born: its view is current
        others = [d for d in staff_devices(self._db, store) if d != device]
        self._send(store, others)  # a device of the store came or went

    def call_changed(self, device: str) -> None:
        """A call of `device` was stored: its store's staff devices see the board again."""
        store = store_of(self._db, device)
        if store is not None:
            self._send(store, staff_devices(self._db, store))

    def _send(self, store: str, devices: list[str]) -> None:
        if not devices:
            return
        data = encode(board_of(self._db, store, self._clock))
        for device in devices:
            self._publish(topics.help_board(device), data)
        log.debug("help board of %s sent to %s", store, ", ".join(devices))
