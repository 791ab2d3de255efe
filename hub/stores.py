"""Which store each device belongs to: the catalog it gets and the store its reports count for."""

from __future__ import annotations

from peewee import CharField, Database

from hub.models import HubModel


class DeviceStore(HubModel):
    """Which store a device belongs to (a device belongs to one store)."""

    device = CharField(primary_key=True, max_length=128)
    store = CharField(max_length=64, index=True)


def assign_device(db: Database, device: str, store: str) -> None:
    """Put a device in a store (moving it if it was in another)."""
    DeviceStore.insert(device=device, store=store).on_conflict(
        conflict_target=[DeviceStore.device], preserve=[DeviceStore.store]
    ).execute(db)


def store_of(db: Database, device: str) -> str | None:
    """The store a device belongs to, or None when it was never assigned."""
    row = DeviceStore.select(DeviceStore.store).where(DeviceStore.device == device).tuples()
    found = row.execute(db)
    return str(found[0][0]) if found else None


def devices_of(db: Database, store: str) -> list[str]:
    """The devices of a store, sorted."""
    query = DeviceStore.select(DeviceStore.device).where(DeviceStore.store == store)
    return sorted(str(d) for (d,) in query.order_by(DeviceStore.device).tuples().execute(db))
