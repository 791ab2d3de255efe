"""What the products API shows and takes: full records, their versions, and their checks.

A product's `version` is the catalog version in which its record last changed (a count
alone does not change it); the API hands it out as the ETag and wants it back in
`If-Match` (or as `version` in the body) to update or delete. The checks are those of
the CSV import (appliance/catalog_import.py): a name, a price in the store's currency,
a tax class the store knows, GTINs with their check digits, no barcode twice in a
store, and no bagging-area weight on a product sold by weight; a wrong field is a 422
naming it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import quote

import msgspec
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, PathParameter
from msgspec import Meta
from peewee import Database

from appliance.core.bagging import MAX_BAG_GRAMS, MAX_BAG_TOLERANCE
from appliance.core.barcode import normalize_gtin
from appliance.core.catalog import Product as CoreProduct
from appliance.core.money import Money, is_known_currency
from appliance.errors import BarcodeError
from appliance.mqtt.payloads import MAX_DESCRIPTION, MAX_SAFE
from appliance.settings import StoreSettings
from hub.api.paging import invalid, rfc3339
from hub.api.problems import PROBLEM_JSON, ProblemError
from hub.catalog import HubCatalog, ProductRecord
from hub.catalog_entries import CatalogEntry, barcode_owners, store_currency, uses_tax_class
from hub.product_images import PictureInfo, picture_infos
from hub.webhooks.events import PRODUCT_CHANGED, record

MAX_TEXT = 255  # a name, a translation, a category, a tax class: a line on a screen
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})*")
# The classes every store has unless its imports say otherwise (appliance/settings.py).
DEFAULT_TAX_CLASSES = frozenset(StoreSettings().tax_classes)

Name = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]
Price = Annotated[int, Meta(ge=0, le=MAX_SAFE, description="Minor units (cents) of `currency`.")]
Version = Annotated[int, Meta(ge=1, le=MAX_SAFE)]
# The device's own bounds (its ProductPayload), so the hub never sends what a device refuses.
BagWeight = Annotated[
    int,
    Meta(ge=1, le=MAX_BAG_GRAMS, description="Grams one item adds to the bagging area."),
]
BagSlack = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_BAG_TOLERANCE,
        description="Grams the bagging area may be off by, either way (0 or more).",
    ),
]
StoreKey = Annotated[str, Meta(min_length=1, max_length=64)]
_SKU = r"^\S(.*\S)?$"  # no space at either end
Sku = Annotated[str, Meta(min_length=1, max_length=64, pattern=_SKU)]
StorePath = Annotated[
    str, PathParameter(min_length=1, max_length=64, description="The store's name.")
]
SkuPath = Annotated[
    str,
    PathParameter(min_length=1, max_length=64, pattern=_SKU, description="The product's SKU."),
]
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='The version the change is made against, as its ETag ("3"); `*`: any.',
    ),
]


class ImageRef(msgspec.Struct, frozen=True, kw_only=True):
    """A product's picture: the original as sent, and the thumbnail the devices show."""

    sha256: str
    content_type: str
    size: int  # bytes of the original
    width: int
    height: int
    url: str  # the original
    thumbnail_url: str  # a JPEG that fits the kiosk's product tile


class Product(msgspec.Struct, frozen=True, kw_only=True):
    """A product of a store as the API shows it; `version` is its ETag."""

    sku: str
    name: str
    names: dict[str, str]  # {locale: name}
    description: str
    price: int  # minor units of `currency`; per kg when sold by weight
    currency: str
    tax_class: str
    category: str
    barcodes: list[str]  # GTIN-14, check digits verified
    age_restriction: int  # years; 0: none
    sold_by: Literal["each", "kg"]
    stock_tracked: bool
    bag_grams: int | None  # what one item adds to the bagging area; None: not known
    bag_tolerance: int | None  # grams either way; None: the store's default
    image: ImageRef | None
    version: int  # the catalog version the record last changed in
    updated_at: str | None  # when that was, RFC 3339


ProductAction = Literal["created", "updated", "deleted"]


class ProductData(msgspec.Struct, frozen=True, kw_only=True):
    """product.changed: a product made, changed or deleted through the API, as it is now."""

    action: ProductAction
    store: str
    sku: str
    version: int  # the catalog version the change made: the product's ETag from now on
    product: Product | None  # null when deleted


class ProductPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of products in SKU order; `next_cursor` is null on the last page."""

    items: list[Product]
    next_cursor: str | None
    has_more: bool  # True: another page follows


class ProductInput(msgspec.Struct, frozen=True, kw_only=True):
    """A product's full record, as PUT replaces it (the picture and the stock stay apart).

    What GET gives may be sent back as it is: `image`, `updated_at` are ignored.
    """

    name: Name
    price: Price
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217.")]
    tax_class: Name
    names: dict[Annotated[str, Meta(max_length=16)], Name] = {}
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION)] = ""
    category: Annotated[str, Meta(max_length=MAX_TEXT)] = ""
    barcodes: Annotated[list[str], Meta(max_length=64)] = []
    age_restriction: Annotated[int, Meta(ge=0, le=99)] = 0
    sold_by: Literal["each", "kg"] = "each"
    stock_tracked: bool = True
    bag_grams: BagWeight | None = None  # null: not known; always null when sold by kg
    bag_tolerance: BagSlack | None = None  # null: the store's default
    sku: str | None = None  # when given, the path's
    version: Version | None = None  # instead of If-Match


class ProblemDetails(msgspec.Struct, frozen=True, kw_only=True):
    """An error as RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str


class VersionProblem(msgspec.Struct, frozen=True, kw_only=True):
    """412 or 428: the version is wrong or missing; `version` is the current one (null: none)."""

    type: str
    title: str
    status: int
    detail: str
    version: int | None


def problem_response(description: str, body: type[msgspec.Struct] = ProblemDetails) -> ResponseSpec:
    """An error response of the document: problem details, and what it means here."""
    return ResponseSpec(
        body, description=description, media_type=PROBLEM_JSON, generate_examples=False
    )


# --- showing ---------------------------------------------------------------------------


def product_url(store: str, sku: str) -> str:
    """The product's path in the API."""
    return f"/api/v1/stores/{quote(store, safe='')}/products/{quote(sku, safe='')}"


def etag(version: int) -> str:
    """The ETag of a product version."""
    return f'"{version}"'


def views(db: Database, store: str, entries: Sequence[CatalogEntry]) -> list[Product]:
    """The products as the API shows them (the pictures' facts in one query)."""
    pictures = picture_infos(db, {e.record.image for e in entries if e.record.image})
    return [_view(store, entry, pictures) for entry in entries]


def _view(store: str, entry: CatalogEntry, pictures: Mapping[str, PictureInfo]) -> Product:
    record, product = entry.record, entry.record.product
    picture = pictures.get(record.image) if record.image else None
    url = product_url(store, product.sku)
    image = None
    if picture is not None:
        image = ImageRef(
            sha256=picture.sha256, content_type=picture.content_type, size=picture.size,
            width=picture.width, height=picture.height, url=f"{url}/image",
            thumbnail_url=f"{url}/thumbnail",
        )  # fmt: skip
    return Product(
        sku=product.sku, name=product.name, names=dict(product.names),
        description=record.description, price=product.price.minor,
        currency=product.price.currency, tax_class=product.tax_class,
        category=product.category, barcodes=list(product.barcodes),
        age_restriction=product.age_restriction, sold_by=product.sold_by,
        stock_tracked=product.stock_tracked, bag_grams=product.bag_grams,
        bag_tolerance=product.bag_tolerance, image=image, version=entry.version,
        updated_at=rfc3339(entry.changed_at),
    )  # fmt: skip


def record_product_event(
    db: Database,
    store: str,
    sku: str,
    version: int,
    *,
    product: Product | None,
    action: ProductAction,
) -> None:
    """product.changed (created, updated or deleted), in the caller's transaction."""
    data = ProductData(action=action, store=store, sku=sku, version=version, product=product)
    payload = msgspec.to_builtins(data)
    record(db, PRODUCT_CHANGED, payload, store=store, key=f"product:{store}:{sku}:{version}")


# --- versions --------------------------------------------------------------------------

Wanted = int | Literal["*"] | None


def wanted_version(if_match: str | None, body_version: int | None) -> Wanted:
    """The version a change is made against: If-Match's, else the body's (None: neither)."""
    if if_match is None:
        return body_version
    text = if_match.strip()
    if text == "*":
        return "*"
    tag = text.removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise invalid("If-Match", 'expected a product version as an ETag, e.g. "3"', "header")
    return int(tag)


def check_version(current: CatalogEntry | None, wanted: Wanted, sku: str) -> None:
    """412 when `wanted` is not the current version, 428 when a change to one gives none."""
    if current is None:
        if wanted is not None:
            raise ProblemError(412, f"{sku} does not exist (any more)", version=None)
        return
    if wanted is None:
        raise ProblemError(
            428,
            f"{sku} exists: send If-Match: {etag(current.version)} (or `version`) to change it",
            title="Precondition Required",
            version=current.version,
        )
    if wanted not in ("*", current.version):
        raise ProblemError(
            412,
            f"{sku} is at version {current.version}, not {wanted}: read it again",
            version=current.version,
        )


# --- checking --------------------------------------------------------------------------


def checked_record(
    catalog: HubCatalog, sku: str, body: ProductInput, image: str | None
) -> ProductRecord:
    """The record a PUT asks for, checked against the store; 422 names every wrong field."""
    errors: list[dict[str, str]] = []

    def bad(field: str, message: str) -> None:
        errors.append({"key": field, "message": message, "source": "body"})

    if body.sku is not None and body.sku != sku:
        bad("sku", f"the body names {body.sku!r}, the path {sku!r}")
    if not body.name.strip():
        bad("name", "is blank")
    _check_currency(catalog, body.currency, bad)
    if body.tax_class not in DEFAULT_TAX_CLASSES and not uses_tax_class(catalog, body.tax_class):
        known = ", ".join(sorted(DEFAULT_TAX_CLASSES))
        bad("tax_class", f"{body.tax_class!r} is not a tax class of the store (e.g. {known})")
    for locale, text in body.names.items():
        if not _LOCALE.fullmatch(locale):
            bad(f"names.{locale}", "is not a locale such as de or de_AT")
        elif not text.strip():
            bad(f"names.{locale}", "is blank")
    keys = _checked_barcodes(catalog, sku, body.barcodes, bad)
    if body.bag_grams is not None and body.sold_by == "kg":
        # Its line's own weight is what the bag gains (the CSV import's rule).
        bad("bag_grams", "must be null for a product sold by weight (sold_by kg)")
    if errors:
        raise _invalid_all(errors)
    product = CoreProduct(
        sku=sku, name=body.name, price=Money(body.price, body.currency),
        tax_class=body.tax_class, category=body.category,
        age_restriction=body.age_restriction, stock_tracked=body.stock_tracked,
        sold_by=body.sold_by, names=tuple(sorted(body.names.items())), barcodes=tuple(keys),
        bag_grams=body.bag_grams, bag_tolerance=body.bag_tolerance,
    )  # fmt: skip
    return ProductRecord(product, body.description, image)


def check_currency(catalog: HubCatalog, currency: str, field: str) -> None:
    """422 unless `currency` is the store's (any known one for a store without products)."""
    errors: list[dict[str, str]] = []
    _check_currency(catalog, currency, lambda _f, m: errors.append({"key": field, "message": m}))
    if errors:
        raise _invalid_all(errors)


def _check_currency(catalog: HubCatalog, currency: str, bad: Any) -> None:
    if not is_known_currency(currency):
        bad("currency", f"{currency!r} is not an ISO 4217 currency")
        return
    store = store_currency(catalog)
    if store is not None and store != currency:
        bad("currency", f"the store's prices are in {store}")


def _checked_barcodes(catalog: HubCatalog, sku: str, codes: list[str], bad: Any) -> list[str]:
    keys: dict[str, int] = {}  # GTIN-14 -> its place in the list
    for n, code in enumerate(codes):
        try:
            key = normalize_gtin(code)
        except BarcodeError as err:
            bad(f"barcodes[{n}]", str(err))
            continue
        if key in keys:
            bad(f"barcodes[{n}]", f"{code} is given twice")
            continue
        keys[key] = n
    # A device refuses a catalog where two products share a barcode.
    owners = barcode_owners(catalog, keys) if keys else {}
    for key, n in keys.items():
        owner = owners.get(key)
        if owner is not None and owner != sku:
            bad(f"barcodes[{n}]", f"{key.lstrip('0')} is the barcode of {owner} in this store")
    return list(keys)


def _invalid_all(errors: Collection[dict[str, str]]) -> ValidationException:
    detail = "; ".join(f"{e['key']}: {e['message']}" for e in errors)
    return ValidationException(detail=detail, extra=list(errors))
