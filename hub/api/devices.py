"""/api/v1/devices: the fleet's devices with their status, telemetry, journal and jobs.

A token limited to a store sees the devices that are in that store now: any other
device is "not found", exactly like one the hub never heard of.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from peewee import JOIN, Database

from hub.api import z_reports
from hub.api.access import Principal
from hub.api.device_views import DeviceDetail, DeviceView, device_views, job_views
from hub.api.paging import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from hub.models import Device
from hub.stores import DeviceStore

_CURSOR_KIND = "devices"


class DevicePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of devices, by id."""

    items: list[DeviceView]
    next_cursor: str | None  # the cursor of the next page; null after the last one
    has_more: bool


def _devices(principal: Principal) -> Any:
    """Device rows with their store, limited to what the principal sees."""
    query = Device.select(Device, DeviceStore.store).join(
        DeviceStore, on=(DeviceStore.device == Device.id), join_type=JOIN.LEFT_OUTER
    )
    if principal.store is not None:
        query = query.where(DeviceStore.store == principal.store)
    return query


@get(
    "/devices",
    operation_id="listDevices",
    summary="List devices",
    sync_to_thread=True,
    tags=["devices"],
)
def list_devices(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    store: Annotated[
        str | None, QueryParameter(description="Only the devices in this store.")
    ] = None,
    online: Annotated[
        bool | None, QueryParameter(description="Only online (or offline) ones.")
    ] = None,
) -> DevicePage:
    """Every device the hub has heard of, by id, with its status and last telemetry."""
    after = decode_cursor(_CURSOR_KIND, cursor)
    query = _devices(principal)
    if store is not None:
        query = query.where(DeviceStore.store == store)
    if online is not None:
        query = query.where(Device.online == online)
    if after is not None:
        query = query.where(Device.id > after)
    rows = list(query.order_by(Device.id).limit(limit + 1).dicts().execute(db))
    page = rows[:limit]
    views = device_views(db, page, sales_store=principal.store)
    more = len(rows) > limit
    cursor_after = encode_cursor(_CURSOR_KIND, views[-1].id) if more else None
    return DevicePage(items=views, next_cursor=cursor_after, has_more=more)


@get(
    "/devices/{device_id:str}",
    operation_id="getDevice",
    summary="Get a device",
    sync_to_thread=True,
    tags=["devices"],
    raises=[NotFoundException],
)
def get_device(
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    device_id: FromPath[str],
) -> DeviceDetail:
    """One device: status, telemetry, journal, rejected and last sale, pending and recent jobs."""
    row = _devices(principal).where(Device.id == device_id).dicts().first(db)
    if row is None:
        raise NotFoundException(f"no device {device_id}")
    view = device_views(db, [row], sales_store=principal.store)[0]
    pending, recent = job_views(db, device_id)
    return DeviceDetail(**msgspec.structs.asdict(view), pending_jobs=pending, recent_jobs=recent)


ROUTES: list[Any] = [list_devices, get_device, *z_reports.ROUTES]
