"""/api/v1/stores/{store}/stock: levels per store, stock movements, and stocktakes.

A level is the product's last count, minus what the store's devices sold since (as their
sales arrive), plus the movements recorded since (hub/stock_levels.py). A movement or a
count is made in the request's transaction under the store's catalog lock, with its
stock.changed webhook event, and the new level goes to the store's devices as a
stock-only catalog delta (hub/catalog_push.py). A movement with a `reference` already
recorded in the store is that movement: answered 200 with it, never counted twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from msgspec import Meta
from peewee import Database

from hub.api.access import Principal
from hub.api.paging import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_cursor,
    decode_id_cursor,
    encode_cursor,
    invalid,
    rfc3339,
    settled_ids,
)
from hub.api.problems import ProblemError
from hub.api.product_views import SkuPath, StorePath, problem_response
from hub.api.products import found, visible
from hub.catalog import HubCatalog
from hub.catalog_entries import CatalogEntry, product_entries, products_page
from hub.catalog_records import StockMovement as StockMovementRow
from hub.stock_levels import StockLevel, levels_of
from hub.stock_movements import (
    Movement,
    Reason,
    by_reference,
    movements_of,
    record_movement,
    send_levels,
)
from hub.webhooks.events import STOCK_CHANGED, record

_TAGS = ["stock"]
_CURSOR_KIND = "stock"
_MOVEMENTS_KIND = "movements"
MAX_QUANTITY = 10**9  # items, or grams when sold by weight

Quantity = Annotated[int, Meta(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]


class Stock(msgspec.Struct, frozen=True, kw_only=True):
    """A product's level in a store; `level` is null when it is not counted or not tracked."""

    sku: str
    name: str
    stock_tracked: bool
    level: int | None
    counted: int | None  # the last stocktake
    counted_at: str | None
    sold: int  # since that count (refunds put back)
    moved: int  # movements since that count
    oversold: bool


class StockPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of stock-tracked products' levels, in SKU order."""

    items: list[Stock]
    next_cursor: str | None
    has_more: bool  # True: another page follows


class MovementInput(msgspec.Struct, frozen=True, kw_only=True):
    """Stock in (positive) or out (negative), why, and the caller's id for it."""

    delta: Quantity
    reason: Reason
    reference: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class StockMovement(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded movement, and the product's level now."""

    id: int
    store: str
    sku: str
    delta: int
    reason: str
    reference: str | None
    at: str
    level: int | None


class MovementPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a product's movements, oldest first."""

    items: list[StockMovement]
    next_cursor: str | None
    has_more: bool  # True: another page follows


class CountInput(msgspec.Struct, frozen=True, kw_only=True):
    """A stocktake: how many there are now."""

    count: Annotated[int, Meta(ge=0, le=MAX_QUANTITY)]


class StockMovementData(msgspec.Struct, frozen=True, kw_only=True):
    """stock.changed by a movement through the API: the level after it, and the movement."""

    store: str
    sku: str
    level: int
    cause: Reason  # the movement's reason
    movement: StockMovement


class StockCountData(msgspec.Struct, frozen=True, kw_only=True):
    """stock.changed by a stocktake through the API: the count, and the level from it."""

    store: str
    sku: str
    level: int | None
    cause: Literal["count"]
    count: int


_CONFLICT = {
    409: problem_response(
        "The product's stock is not tracked, or (movements) it was never counted, "
        "or the reference names another movement."
    )
}


@get(
    "/stores/{store:str}/stock",
    operation_id="listStock",
    sync_to_thread=True,
    tags=_TAGS,
    raises=[NotFoundException],
)
def list_stock(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> StockPage:
    """The level of every stock-tracked product of the store, a page at a time."""
    visible(principal, store)
    after = decode_cursor(_CURSOR_KIND, cursor)
    entries = products_page(HubCatalog(db, store), after, limit + 1, tracked=True)
    page = entries[:limit]
    levels = levels_of(db, store, [e.record.product.sku for e in page])
    more = len(entries) > limit
    return StockPage(
        items=[_stock(entry, levels.get(entry.record.product.sku)) for entry in page],
        next_cursor=encode_cursor(_CURSOR_KIND, page[-1].record.product.sku) if more else None,
        has_more=more,
    )


@get(
    "/stores/{store:str}/stock/{sku:str}",
    operation_id="getStock",
    sync_to_thread=True,
    tags=_TAGS,
    raises=[NotFoundException],
)
def get_stock(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
) -> Stock:
    """One product's level in the store."""
    entry = found(db, principal, store, sku)
    return _stock(entry, levels_of(db, store, [sku]).get(sku))


@post(
    "/stores/{store:str}/stock/{sku:str}/movements",
    operation_id="addStockMovement",
    sync_to_thread=True,
    tags=_TAGS,
    status_code=201,
    raises=[NotFoundException],
    responses={
        200: ResponseSpec(StockMovement, description="Recorded before.", generate_examples=False),
        **_CONFLICT,
    },
)
def add_movement(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    data: JSONBody[MovementInput],
) -> Response[StockMovement]:
    """Record stock in or out (goods in, damage, a web order...); the devices get the level."""
    if data.delta == 0:
        raise invalid("delta", "must not be 0: a movement moves something", "body")
    visible(principal, store)
    catalog = HubCatalog(db, store)
    with catalog.write_lock():
        if data.reference is not None:
            held = by_reference(db, store, data.reference)
            if held is not None:
                return Response(_repeated(db, held, sku, data), status_code=200)
        _tracked(found(db, principal, store, sku))
        if sku not in catalog.counts(skus=[sku]):
            raise ProblemError(409, f"{sku} was never counted: a movement needs a count to move")
        moment = datetime.now(UTC).replace(tzinfo=None)
        change = (data.delta, data.reason, data.reference)
        movement = record_movement(catalog, sku, change, token=principal.token_id, at=moment)
        now = levels_of(db, store, [sku])[sku].level
        send_levels(catalog, [sku])
        view = _movement(movement, now)
        moved = StockMovementData(store=store, sku=sku, level=now, cause=data.reason, movement=view)
        _stock_event(db, moved, f"movement:{movement.id}")
    return Response(view, status_code=201)


@get(
    "/stores/{store:str}/stock/{sku:str}/movements",
    operation_id="listStockMovements",
    sync_to_thread=True,
    tags=_TAGS,
    raises=[NotFoundException],
)
def list_movements(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> MovementPage:
    """A product's stock movements, oldest first, a page at a time."""
    found(db, principal, store, sku)
    after = decode_id_cursor(_MOVEMENTS_KIND, cursor)
    with settled_ids(db, StockMovementRow):  # several web processes may be recording some
        rows = movements_of(db, store, sku, after=after, limit=limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return MovementPage(
        items=[_movement(m, None) for m in page],
        next_cursor=encode_cursor(_MOVEMENTS_KIND, page[-1].id) if more else None,
        has_more=more,
    )


@post(
    "/stores/{store:str}/stock/{sku:str}/count",
    operation_id="countStock",
    sync_to_thread=True,
    tags=_TAGS,
    status_code=200,
    raises=[NotFoundException],
    responses=_CONFLICT,
)
def count_stock(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    data: JSONBody[CountInput],
) -> Stock:
    """A stocktake: the level is the count from now on; the devices get it."""
    visible(principal, store)
    catalog = HubCatalog(db, store)
    with catalog.write_lock():
        _tracked(found(db, principal, store, sku))
        result = catalog.count({sku: data.count})
        entry = product_entries(catalog, [sku])[sku]
        level = levels_of(db, store, [sku]).get(sku)
        view = _stock(entry, level)
        counted = StockCountData(
            store=store, sku=sku, level=view.level, cause="count", count=data.count
        )
        _stock_event(db, counted, f"count:{result.version}")
    return view


def _stock(entry: CatalogEntry, level: StockLevel | None) -> Stock:
    product = entry.record.product
    return Stock(
        sku=product.sku,
        name=product.name,
        stock_tracked=product.stock_tracked,
        level=level.level if level is not None else None,
        counted=level.counted if level is not None else None,
        counted_at=rfc3339(level.counted_at) if level is not None else None,
        sold=level.sold if level is not None else 0,
        moved=level.moved if level is not None else 0,
        oversold=level.oversold if level is not None else False,
    )


def _movement(movement: Movement, level: int | None) -> StockMovement:
    return StockMovement(
        id=movement.id, store=movement.store, sku=movement.sku, delta=movement.delta,
        reason=movement.reason, reference=movement.reference,
        at=rfc3339(movement.at) or "", level=level,
    )  # fmt: skip


def _repeated(db: Database, held: Movement, sku: str, data: MovementInput) -> StockMovement:
    """The movement a repeated reference names, when it is the same movement; else 409."""
    if (held.sku, held.delta, held.reason) != (sku, data.delta, data.reason):
        raise ProblemError(
            409,
            f"reference {held.reference!r} is movement {held.id} of {held.sku} "
            f"({held.delta:+d}, {held.reason}) in this store already",
            movement=held.id,
        )
    level = levels_of(db, held.store, [sku]).get(sku)
    return _movement(held, level.level if level is not None else None)


def _tracked(entry: CatalogEntry) -> None:
    if not entry.record.product.stock_tracked:
        raise ProblemError(409, f"{entry.record.product.sku}'s stock is not tracked in this store")


def _stock_event(db: Database, data: StockMovementData | StockCountData, fact: str) -> None:
    """stock.changed in the caller's transaction; `fact` names what changed the level."""
    key = f"stock:{data.store}:{data.sku}:{fact}"
    record(db, STOCK_CHANGED, msgspec.to_builtins(data), store=data.store, key=key)


ROUTES: list[Any] = [list_stock, get_stock, add_movement, list_movements, count_stock]
