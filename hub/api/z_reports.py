"""/api/v1 stores and Z reports: the stores the hub knows and the day-end reports of their tills.

A Z report is taken from a device's fiscal journal (hub/journal_views.py) and counts for
the store the device was in when it arrived. A token limited to a store sees that store
and its reports only; another store, or a device outside it, is "not found".
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from peewee import JOIN, Case, Database, fn

from hub.api.access import Principal
from hub.api.paging import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_id_cursor,
    encode_cursor,
    rfc3339,
    settled_ids,
    utc_param,
)
from hub.catalog import HubCatalogVersion
from hub.models import Device, TillReport
from hub.stores import DeviceStore

log = logging.getLogger(__name__)

_CURSOR_KIND = "z-reports"


class ReportTax(msgspec.Struct, frozen=True, kw_only=True):
    """The takings of one tax rate (basis points) over the report's period, minor units."""

    rate: int
    net: int
    tax: int
    gross: int


class _Body(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a report's journal body the API shows beyond the hub's columns."""

    shift_id: str = ""
    shift_number: int = 0
    staff: str = ""
    opened_at: str = ""
    tenders: dict[str, int] = {}
    taxes: list[ReportTax] = []
    sales_count: int = 0
    refunds_count: int = 0
    voids_count: int = 0
    discounts: int = 0
    rounding: int = 0
    cash_in: int = 0
    cash_out: int = 0
    float_total: int = 0
    after_sequence: int = 0
    upto_sequence: int = 0


class ZReport(msgspec.Struct, frozen=True, kw_only=True):
    """A till's day-end (Z) report with its totals, in minor units of `currency`.

    A total the device's report did not carry is null (`counted_cash` and `difference`
    are null for a shift nobody counted).
    """

    device: str
    store: str | None  # the device's store when the report arrived
    number: int  # gapless from 1 per device
    journal_number: int  # the journal entry that holds it
    made_at: str
    opened_at: str | None  # when the shift it closes was opened
    shift_id: str
    staff: str
    currency: str
    sales_count: int
    sales_gross: int | None
    refunds_count: int
    refunds_total: int | None  # given back, positive
    voids_count: int
    voids_total: int | None  # cancelled, positive
    net: int | None  # sales_gross - refunds_total - voids_total
    discounts: int
    rounding: int
    tenders: dict[str, int]  # taken per tender kind
    taxes: list[ReportTax]
    cash_in: int
    cash_out: int
    float_total: int
    expected_cash: int | None
    counted_cash: int | None
    difference: int | None
    grand_total: int | None  # the device's running total over every Z so far
    after_sequence: int  # the report covers the documents numbered after this ...
    upto_sequence: int  # ... up to this one


class ZReportPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of Z reports, in the order the hub stored them."""

    items: list[ZReport]
    next_cursor: str | None  # kept, it also finds reports that arrive later
    has_more: bool


class Store(msgspec.Struct, frozen=True, kw_only=True):
    """A store the hub knows: devices were put in it or it has a catalog."""

    id: str
    devices: int  # in the store now
    online: int  # of those, online now
    catalog_version: int | None  # its current catalog version (null: no catalog yet)


_decode_body = msgspec.json.Decoder(_Body).decode


def _body(row: TillReport) -> _Body:
    try:
        return _decode_body(row.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        # The report is part of the fiscal record whatever it holds: show its columns.
        log.warning("Z report %s of %s: body not read (%s)", row.number, row.device, err)
        return _Body()


def z_report_view(row: TillReport) -> ZReport:
    """A stored Z report as the API shows it."""
    body = _body(row)
    gross, refunds, voids = row.sales_gross, row.refunds_total, row.voids_total
    net = None
    if gross is not None and refunds is not None and voids is not None:
        net = int(gross) - int(refunds) - int(voids)
    return ZReport(
        device=str(row.device),
        store=row.store,
        number=int(row.number),
        journal_number=int(row.journal_number),
        made_at=rfc3339(row.made_at) or "",
        opened_at=_opened(body.opened_at),
        shift_id=body.shift_id,
        staff=body.staff,
        currency=str(row.currency),
        sales_count=body.sales_count,
        sales_gross=gross,
        refunds_count=body.refunds_count,
        refunds_total=refunds,
        voids_count=body.voids_count,
        voids_total=voids,
        net=net,
        discounts=body.discounts,
        rounding=body.rounding,
        tenders=body.tenders,
        taxes=body.taxes,
        cash_in=body.cash_in,
        cash_out=body.cash_out,
        float_total=body.float_total,
        expected_cash=row.expected_cash,
        counted_cash=row.counted_cash,
        difference=row.difference,
        grand_total=row.grand_total,
        after_sequence=body.after_sequence,
        upto_sequence=body.upto_sequence,
    )


def _opened(text: str) -> str | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return rfc3339(moment) if moment.tzinfo is not None else None


def _page(query: Any, db: Database, limit: int, cursor: str | None) -> ZReportPage:
    after = decode_id_cursor(_CURSOR_KIND, cursor)
    with settled_ids(db, TillReport):
        rows = list(
            query.where(TillReport.id > after).order_by(TillReport.id).limit(limit + 1).execute(db)
        )
    page = rows[:limit]
    last = encode_cursor(_CURSOR_KIND, page[-1].id) if page else cursor
    return ZReportPage(
        items=[z_report_view(r) for r in page], next_cursor=last, has_more=len(rows) > limit
    )


def _z_reports(since: datetime | None, until: datetime | None) -> Any:
    query = TillReport.select().where(TillReport.kind == "z")
    since_at, until_at = utc_param("since", since), utc_param("until", until)
    if since_at is not None:
        query = query.where(TillReport.made_at >= since_at)
    if until_at is not None:
        query = query.where(TillReport.made_at < until_at)
    return query


def known_stores(db: Database) -> set[str]:
    """Every store a device was put in or a catalog was made for."""
    assigned = DeviceStore.select(DeviceStore.store).distinct().tuples().execute(db)
    catalogs = HubCatalogVersion.select(HubCatalogVersion.store).distinct().tuples().execute(db)
    return {str(s) for (s,) in assigned} | {str(s) for (s,) in catalogs}


_SINCE = "Made at or after this RFC 3339 time."
_UNTIL = "Made before this RFC 3339 time."
Since = Annotated[datetime | None, QueryParameter(description=_SINCE)]
Until = Annotated[datetime | None, QueryParameter(description=_UNTIL)]


@get(
    "/devices/{device_id:str}/z-reports",
    operation_id="listDeviceZReports",
    summary="List a device's Z reports",
    sync_to_thread=True,
    tags=["devices"],
    raises=[NotFoundException],
)
def device_z_reports(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    device_id: FromPath[str],
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    since: Since = None,
    until: Until = None,
) -> ZReportPage:
    """A device's Z reports with their totals, page by page."""
    query = _z_reports(since, until).where(TillReport.device == device_id)
    if principal.store is not None:
        in_store = DeviceStore.select().where(
            (DeviceStore.device == device_id) & (DeviceStore.store == principal.store)
        )
        if not in_store.exists(db):
            raise NotFoundException(f"no device {device_id}")
        query = query.where(TillReport.store == principal.store)
    elif not (
        Device.select().where(Device.id == device_id).exists(db)
        or TillReport.select().where(TillReport.device == device_id).exists(db)
    ):
        raise NotFoundException(f"no device {device_id}")
    return _page(query, db, limit, cursor)


@get(
    "/stores/{store:str}/z-reports",
    operation_id="listStoreZReports",
    summary="List a store's Z reports",
    sync_to_thread=True,
    tags=["stores"],
    raises=[NotFoundException],
)
def store_z_reports(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: FromPath[str],
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    since: Since = None,
    until: Until = None,
) -> ZReportPage:
    """The Z reports of every till of a store with their totals, page by page."""
    query = _z_reports(since, until).where(TillReport.store == store)
    if not principal.sees_store(store) or not (store in known_stores(db) or query.exists(db)):
        raise NotFoundException(f"no store {store}")
    return _page(query, db, limit, cursor)


@get(
    "/stores",
    operation_id="listStores",
    summary="List stores",
    sync_to_thread=True,
    tags=["stores"],
)
def list_stores(
    db: NamedDependency[Database], principal: NamedDependency[Principal]
) -> list[Store]:
    """The stores the hub knows (devices were put in them or they have a catalog), by id."""
    names = sorted(s for s in known_stores(db) if principal.sees_store(s))
    if not names:
        return []
    counts = {
        str(store): (int(total), int(online or 0))
        for store, total, online in DeviceStore.select(
            DeviceStore.store,
            fn.COUNT(DeviceStore.device),
            fn.SUM(Case(None, [(Device.online == True, 1)], 0)),  # noqa: E712
        )
        .join(Device, on=(Device.id == DeviceStore.device), join_type=JOIN.LEFT_OUTER)
        .where(DeviceStore.store.in_(names))
        .group_by(DeviceStore.store)
        .tuples()
        .execute(db)
    }
    versions = {
        str(store): int(version)
        for store, version in HubCatalogVersion.select(
            HubCatalogVersion.store, fn.MAX(HubCatalogVersion.version)
        )
        .where(HubCatalogVersion.store.in_(names))
        .group_by(HubCatalogVersion.store)
        .tuples()
        .execute(db)
    }
    return [
        Store(
            id=name,
            devices=counts.get(name, (0, 0))[0],
            online=counts.get(name, (0, 0))[1],
            catalog_version=versions.get(name),
        )
        for name in names
    ]


ROUTES: list[Any] = [device_z_reports, store_z_reports, list_stores]
