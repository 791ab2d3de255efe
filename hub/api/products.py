"""/api/v1/stores/{store}/products: each store's products as full records, with versions.

Every change is one new version of the store's catalog, made in the request's transaction
under the store's catalog lock, with its product.changed webhook event; the serve workers
send it to the store's devices as a catalog delta (hub/catalog_push.py). A product's
version is its ETag: a change names the version it was made against (If-Match, or
`version` in the body), a stale one is 412 with the current version, a missing one 428.
A PUT to a SKU the store does not have creates it (201). A token limited to a store sees
no other: another store's products are "not found".
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, patch, put
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, QueryParameter
from msgspec import Meta
from peewee import Database

from appliance.core.money import Money
from hub.api import pictures
from hub.api.access import Principal
from hub.api.paging import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from hub.api.problems import ProblemError
from hub.api.product_views import (
    IfMatch,
    Price,
    Product,
    ProductAction,
    ProductInput,
    ProductPage,
    Sku,
    SkuPath,
    StorePath,
    Version,
    VersionProblem,
    check_version,
    checked_record,
    etag,
    problem_response,
    record_product_event,
    views,
    wanted_version,
)
from hub.catalog import DELTA_LIMIT, HubCatalog
from hub.catalog_entries import CatalogEntry, product_entries, product_entry, products_page

_CURSOR_KIND = "products"
_TAGS = ["products"]

IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(name="If-None-Match", description="`*`: create only, never replace."),
]
VERSION_RESPONSES = {
    412: problem_response(
        "The product is at another version (the body says which) or gone.", VersionProblem
    ),
    428: problem_response(
        "The product exists: say which version the change is made against.", VersionProblem
    ),
}


def visible(principal: Principal, store: str) -> None:
    """404 for a store the token may not see, exactly as for a product it does not have."""
    if not principal.sees_store(store):
        raise NotFoundException(f"no store {store!r}")


def found(db: Database, principal: Principal, store: str, sku: str) -> CatalogEntry:
    """The product as it is now; 404 when the store (for this token) or product is not there."""
    visible(principal, store)
    entry = product_entry(HubCatalog(db, store), sku)
    if entry is None:
        raise NotFoundException(f"no product {sku!r} in {store!r}")
    return entry


@get(
    "/stores/{store:str}/products",
    operation_id="listProducts",
    sync_to_thread=True,
    tags=_TAGS,
    raises=[NotFoundException],
)
def list_products(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    category: Annotated[
        str | None, QueryParameter(description="Only this category's products.")
    ] = None,
) -> ProductPage:
    """The store's products in SKU order, a page at a time."""
    visible(principal, store)
    after = decode_cursor(_CURSOR_KIND, cursor)
    entries = products_page(HubCatalog(db, store), after, limit + 1, category=category)
    page = entries[:limit]
    more = len(entries) > limit
    return ProductPage(
        items=views(db, store, page),
        next_cursor=encode_cursor(_CURSOR_KIND, page[-1].record.product.sku) if more else None,
        has_more=more,
    )


@get(
    "/stores/{store:str}/products/{sku:str}",
    operation_id="getProduct",
    sync_to_thread=True,
    tags=_TAGS,
    raises=[NotFoundException],
)
def get_product(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
) -> Response[Product]:
    """One product, with its version as the ETag."""
    entry = found(db, principal, store, sku)
    (view,) = views(db, store, [entry])
    return Response(view, headers={"ETag": etag(entry.version)})


@put(
    "/stores/{store:str}/products/{sku:str}",
    operation_id="putProduct",
    sync_to_thread=True,
    tags=_TAGS,
    status_code=200,
    raises=[NotFoundException],
    responses={
        201: ResponseSpec(Product, description="Created.", generate_examples=False),
        **VERSION_RESPONSES,
    },
)
def put_product(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    data: JSONBody[ProductInput],
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response[Product]:
    """Create a product, or replace its whole record (its picture and stock stay)."""
    visible(principal, store)
    wanted = wanted_version(if_match, data.version)
    catalog = HubCatalog(db, store)
    with catalog.write_lock():
        current = product_entry(catalog, sku)
        if current is not None and if_none_match is not None and if_none_match.strip() == "*":
            raise ProblemError(412, f"{sku} exists already", version=current.version)
        check_version(current, wanted, sku)
        image = current.record.image if current is not None else None
        result = catalog.upsert([checked_record(catalog, sku, data, image)])
        entry = product_entries(catalog, [sku])[sku]
        (view,) = views(db, store, [entry])
        if result.changed_anything:
            action: ProductAction = "created" if current is None else "updated"
            record_product_event(db, store, sku, entry.version, product=view, action=action)
    status = 201 if current is None else 200
    return Response(view, status_code=status, headers={"ETag": etag(entry.version)})


@delete(
    "/stores/{store:str}/products/{sku:str}",
    operation_id="deleteProduct",
    sync_to_thread=True,
    tags=_TAGS,
    raises=[NotFoundException],
    responses=VERSION_RESPONSES,
)
def delete_product(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    if_match: IfMatch = None,
) -> None:
    """Delete a product from the store (the devices stop selling it)."""
    visible(principal, store)
    catalog = HubCatalog(db, store)
    with catalog.write_lock():
        current = product_entry(catalog, sku)
        if current is None:
            raise NotFoundException(f"no product {sku!r} in {store!r}")
        check_version(current, wanted_version(if_match, None), sku)
        result = catalog.delete([sku])
        record_product_event(db, store, sku, result.version, product=None, action="deleted")


# --- prices ----------------------------------------------------------------------------


class PriceChange(msgspec.Struct, frozen=True, kw_only=True):
    """A product's new price, against the version it was read at."""

    sku: Sku
    price: Price
    version: Version | None = None  # required: the change is refused (428) without it


class PriceConflict(msgspec.Struct, frozen=True, kw_only=True):
    """A product whose version is not the one a price change named."""

    sku: str
    version: int


class PriceProblem(msgspec.Struct, frozen=True, kw_only=True):
    """412 or 428 for a price list: nothing changed; `conflicts` lists the current versions."""

    type: str
    title: str
    status: int
    detail: str
    conflicts: list[PriceConflict]


class PricesChanged(msgspec.Struct, frozen=True, kw_only=True):
    """The catalog version the prices went out with, and the products as they are now."""

    version: int
    items: list[Product]


@patch(
    "/stores/{store:str}/prices",
    operation_id="changePrices",
    sync_to_thread=True,
    tags=_TAGS,
    raises=[NotFoundException],
    responses={
        412: problem_response(
            "Some products are at other versions: nothing changed.", PriceProblem
        ),
        428: problem_response("Some changes name no version: nothing changed.", PriceProblem),
    },
)
def change_prices(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    data: Annotated[list[PriceChange], Meta(min_length=1, max_length=DELTA_LIMIT)],
) -> PricesChanged:
    """Change many prices at once, all or nothing, in one catalog version."""
    visible(principal, store)
    _no_twice(data)
    catalog = HubCatalog(db, store)
    with catalog.write_lock():
        current = product_entries(catalog, [change.sku for change in data])
        _check_prices(catalog, data, current)
        records = [
            dataclasses.replace(
                current[c.sku].record,
                product=dataclasses.replace(
                    current[c.sku].record.product,
                    price=Money(c.price, current[c.sku].record.product.price.currency),
                ),
            )
            for c in data
        ]
        result = catalog.upsert(records)
        after = product_entries(catalog, current)
        products = views(db, store, [after[c.sku] for c in data])
        for change, view in zip(data, products, strict=True):
            if view.version != current[change.sku].version:
                record_product_event(
                    db, store, view.sku, view.version, product=view, action="updated"
                )
    return PricesChanged(version=result.version, items=products)


def _no_twice(changes: list[PriceChange]) -> None:
    seen: set[str] = set()
    errors = []
    for n, change in enumerate(changes):
        if change.sku in seen:
            errors.append({"key": f"[{n}].sku", "message": f"{change.sku} is in the list twice"})
        seen.add(change.sku)
    if errors:
        raise ValidationException(detail=errors[0]["message"], extra=errors)


def _check_prices(
    catalog: HubCatalog, changes: list[PriceChange], current: dict[str, CatalogEntry]
) -> None:
    """422 for a product the store lacks, 428 for a change without a version, 412 if stale."""
    missing = [
        {"key": f"[{n}].sku", "message": f"no product {c.sku!r} in {catalog.store!r}"}
        for n, c in enumerate(changes)
        if c.sku not in current
    ]
    if missing:
        raise ValidationException(detail=missing[0]["message"], extra=missing)
    unnamed = [c.sku for c in changes if c.version is None]
    stale = [
        c.sku for c in changes if c.version is not None and c.version != current[c.sku].version
    ]
    for status, skus, why in (
        (428, unnamed, "name no version"),
        (412, stale, "are at other versions"),
    ):
        if skus:
            conflicts = [
                msgspec.to_builtins(PriceConflict(sku=sku, version=current[sku].version))
                for sku in skus
            ]
            raise ProblemError(
                status,
                f"{len(skus)} product(s) {why}: nothing changed",
                title="Precondition Required" if status == 428 else None,
                conflicts=conflicts,
            )


ROUTES: list[Any] = [
    list_products,
    get_product,
    put_product,
    delete_product,
    change_prices,
    *pictures.ROUTES,
]
