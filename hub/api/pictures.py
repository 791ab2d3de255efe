"""/api/v1/stores/{store}/products/{sku}/image: a product's picture, and its thumbnail.

The picture is sent as the raw body (JPEG, PNG or WebP, up to 10 MiB), kept once however
many products show it (hub/product_images.py), and becomes part of the product's record:
a new catalog version whose delta carries the thumbnail to the store's devices. If-Match
is checked when given (a picture is rarely changed by two callers at once, so it is not
required as it is for the record itself).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from litestar import Response, delete, get, put
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import HeaderParameter, RawBody
from peewee import Database

from hub.api.access import Principal
from hub.api.paging import invalid
from hub.api.problems import ProblemError
from hub.api.product_views import (
    IfMatch,
    Product,
    SkuPath,
    StorePath,
    check_version,
    etag,
    problem_response,
    record_product_event,
    views,
    wanted_version,
)
from hub.catalog import HubCatalog
from hub.catalog_entries import CatalogEntry, product_entries, product_entry
from hub.product_images import (
    CONTENT_TYPES,
    MAX_IMAGE_BYTES,
    image_format,
    is_kept,
    keep_picture,
    picture_bytes,
    read_picture,
)

_TAGS = ["products"]
_PATH = "/stores/{store:str}/products/{sku:str}"
_ACCEPTED = frozenset(CONTENT_TYPES.values())
_MIB = MAX_IMAGE_BYTES // (1024 * 1024)

IfNoneMatch = Annotated[
    str | None, HeaderParameter(name="If-None-Match", description="The picture's ETag.")
]
ContentType = Annotated[str, HeaderParameter(name="Content-Type", description="The picture's.")]


@dataclass
class _PictureUpload(Operation):
    """The upload's document: the body is the picture itself, not JSON."""

    def __post_init__(self) -> None:
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        self.request_body = RequestBody(
            content={kind: OpenAPIMediaType(schema=binary) for kind in sorted(_ACCEPTED)},
            description=f"The picture: JPEG, PNG or WebP, up to {_MIB} MiB.",
            required=True,
        )


def _binary(description: str, media_type: str) -> ResponseSpec:
    return ResponseSpec(
        bytes, description=description, media_type=media_type, generate_examples=False
    )


@put(
    f"{_PATH}/image",
    operation_id="putProductImage",
    sync_to_thread=True,
    tags=_TAGS,
    status_code=200,
    request_max_body_size=MAX_IMAGE_BYTES,
    operation_class=_PictureUpload,
    raises=[NotFoundException],
    responses={
        412: problem_response("If-Match named another version of the product."),
        413: problem_response(f"The picture is over {_MIB} MiB."),
        415: problem_response("Not a JPEG, PNG or WebP picture."),
    },
)
def put_image(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    body: RawBody,
    content_type: ContentType = "",
    if_match: IfMatch = None,
) -> Response[Product]:
    """Give a product its picture; the devices get its thumbnail with the product."""
    declared = content_type.partition(";")[0].strip().lower()
    if declared not in _ACCEPTED:
        raise ProblemError(
            415, f"send the picture as {', '.join(sorted(_ACCEPTED))}, not {declared!r}"
        )
    data = body
    kind = image_format(data)
    if kind is None:
        raise invalid("body", "not a picture: Pillow cannot read it", "body")
    if kind not in CONTENT_TYPES:
        raise ProblemError(415, f"a {kind} picture: send JPEG, PNG or WebP")
    sha256 = hashlib.sha256(data).hexdigest()
    try:  # decoded before the lock is taken: a big picture takes a while
        picture = None if is_kept(db, sha256) else read_picture(data)
    except ValueError as err:
        raise invalid("body", str(err), "body") from None
    catalog = HubCatalog(db, store)
    with catalog.write_lock():
        current = _product(catalog, principal, sku)
        if if_match is not None:
            check_version(current, wanted_version(if_match, None), sku)
        if picture is not None:
            keep_picture(db, picture, datetime.now(UTC).replace(tzinfo=None))
        return _set_image(db, catalog, current, sha256)


@delete(
    f"{_PATH}/image",
    operation_id="deleteProductImage",
    sync_to_thread=True,
    tags=_TAGS,
    status_code=200,
    raises=[NotFoundException],
    responses={412: problem_response("If-Match named another version of the product.")},
)
def delete_image(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    if_match: IfMatch = None,
) -> Response[Product]:
    """Take a product's picture away (the picture stays kept for others)."""
    catalog = HubCatalog(db, store)
    with catalog.write_lock():
        current = _product(catalog, principal, sku)
        if if_match is not None:
            check_version(current, wanted_version(if_match, None), sku)
        if current.record.image is None:
            raise NotFoundException(f"{sku} has no picture")
        return _set_image(db, catalog, current, None)


@get(
    f"{_PATH}/image",
    operation_id="getProductImage",
    sync_to_thread=True,
    tags=_TAGS,
    media_type="application/octet-stream",
    raises=[NotFoundException],
    responses={200: _binary("The picture as sent, with its type.", "application/octet-stream")},
)
def get_image(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    if_none_match: IfNoneMatch = None,
) -> Response[bytes]:
    """A product's picture as it was sent."""
    return _picture(db, principal, (store, sku), "original", if_none_match)


@get(
    f"{_PATH}/thumbnail",
    operation_id="getProductThumbnail",
    sync_to_thread=True,
    tags=_TAGS,
    media_type="image/jpeg",
    raises=[NotFoundException],
    responses={200: _binary("The JPEG the devices show.", "image/jpeg")},
)
def get_thumbnail(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    store: StorePath,
    sku: SkuPath,
    if_none_match: IfNoneMatch = None,
) -> Response[bytes]:
    """A product's thumbnail, as the store's devices get it."""
    return _picture(db, principal, (store, sku), "thumbnail", if_none_match)


def _product(catalog: HubCatalog, principal: Principal, sku: str) -> CatalogEntry:
    entry = product_entry(catalog, sku) if principal.sees_store(catalog.store) else None
    if entry is None:
        raise NotFoundException(f"no product {sku!r} in {catalog.store!r}")
    return entry


def _set_image(
    db: Database, catalog: HubCatalog, current: Any, image: str | None
) -> Response[Product]:
    """The product's record with this picture, as a new version; in the caller's lock."""
    store, sku = catalog.store, current.record.product.sku
    result = catalog.upsert([dataclasses.replace(current.record, image=image)])
    entry = product_entries(catalog, [sku])[sku]
    (view,) = views(db, store, [entry])
    if result.changed_anything:
        record_product_event(db, store, sku, entry.version, product=view, action="updated")
    return Response(view, headers={"ETag": etag(entry.version)})


def _picture(
    db: Database,
    principal: Principal,
    at: tuple[str, str],
    which: Literal["original", "thumbnail"],
    if_none_match: str | None,
) -> Response[bytes]:
    store, sku = at
    entry = _product(HubCatalog(db, store), principal, sku)
    sha256 = entry.record.image
    found = picture_bytes(db, sha256, which) if sha256 else None
    if found is None:
        raise NotFoundException(f"{sku} has no picture")
    tag = f'"{sha256}{"" if which == "original" else "-thumb"}"'
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if if_none_match is not None and tag in {t.strip() for t in if_none_match.split(",")}:
        return Response(b"", status_code=304, headers=headers)
    kind, data = found
    return Response(data, media_type=kind, headers=headers)


ROUTES: list[Any] = [put_image, delete_image, get_image, get_thumbnail]
