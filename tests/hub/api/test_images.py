"""Product pictures over /api/v1: kept once however many products show them, a thumbnail
that fits the kiosk and the catalog message, in the product's delta, and what is refused."""

from __future__ import annotations

import io
import random
from typing import Any

from litestar.testing import TestClient
from peewee import Database, fn
from PIL import Image

from appliance.mqtt.payloads import MAX_THUMBNAIL_BYTES
from hub.catalog import HubCatalog
from hub.catalog_records import ProductImage
from hub.product_images import MAX_IMAGE_BYTES, THUMBNAIL_BOX
from tests.hub.api.conftest import Bearer
from tests.hub.api.test_products import STORE, created, record

PRODUCT = f"/api/v1/stores/{STORE}/products"


def picture(kind: str = "PNG", size: tuple[int, int] = (800, 600), **options: Any) -> bytes:
    """A picture as a camera or an export would send it."""
    out = io.BytesIO()
    mode = "RGBA" if kind == "PNG" else "RGB"
    Image.new(mode, size, (200, 30, 30, 255) if mode == "RGBA" else (200, 30, 30)).save(
        out, kind, **options
    )
    return out.getvalue()


def noise(size: tuple[int, int]) -> bytes:
    """A picture no JPEG compresses well: random pixels."""
    rng = random.Random(7)
    image = Image.frombytes(
        "RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3))
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload(
    client: TestClient[Any], headers: dict[str, str], sku: str, data: bytes, kind: str, **extra: str
) -> Any:
    return client.put(
        f"{PRODUCT}/{sku}/image", content=data, headers={**headers, "Content-Type": kind, **extra}
    )


def test_a_picture_becomes_part_of_the_product_and_its_thumbnail_travels_in_the_delta(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    original = picture("JPEG", (1200, 900), quality=90)
    response = upload(client, admin, "TIN-1", original, "image/jpeg")
    assert response.status_code == 200, response.text
    product = response.json()
    assert (product["version"], response.headers["etag"]) == (2, '"2"')
    image = product["image"]
    assert (image["content_type"], image["width"], image["height"]) == ("image/jpeg", 1200, 900)
    assert image["size"] == len(original)
    assert image["url"] == f"{PRODUCT}/TIN-1/image"

    got = client.get(image["url"], headers=admin)
    assert (got.content, got.headers["content-type"]) == (original, "image/jpeg")
    thumb = client.get(image["thumbnail_url"], headers=admin)
    assert thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert small.format == "JPEG"
        assert small.size == (160, 120)  # fits the tile, keeps the shape
    assert len(thumb.content) <= MAX_THUMBNAIL_BYTES
    again = client.get(
        image["thumbnail_url"], headers={**admin, "If-None-Match": thumb.headers["etag"]}
    )
    assert again.status_code == 304

    delta = HubCatalog(api_db, STORE).delta(1)
    assert delta is not None
    (payload,) = delta.upserts
    assert payload.thumbnail == thumb.content
    assert payload.description == record()["description"]


def test_a_picture_is_kept_once_however_many_products_and_stores_show_it(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    created(client, admin, "TIN-2", 2)
    client.put("/api/v1/stores/graz-1/products/G-1", json=record(3), headers=admin)
    shared = picture()
    for path in (f"{PRODUCT}/TIN-1", f"{PRODUCT}/TIN-2", "/api/v1/stores/graz-1/products/G-1"):
        answer = client.put(
            f"{path}/image", content=shared, headers={**admin, "Content-Type": "image/png"}
        )
        assert answer.status_code == 200, answer.text
    assert ProductImage.select(fn.COUNT(ProductImage.sha256)).scalar(api_db) == 1
    shas = {
        client.get(f"{PRODUCT}/{sku}", headers=admin).json()["image"]["sha256"]
        for sku in ("TIN-1", "TIN-2")
    }
    assert len(shas) == 1
    # The same picture again changes nothing: no new version.
    same = upload(client, admin, "TIN-1", shared, "image/png")
    assert same.json()["version"] == 3  # its version when the picture first came

    # Taking it from one product leaves it for the other.
    gone = client.delete(f"{PRODUCT}/TIN-1/image", headers=admin)
    assert gone.status_code == 200 and gone.json()["image"] is None
    assert client.get(f"{PRODUCT}/TIN-1/thumbnail", headers=admin).status_code == 404
    assert client.get(f"{PRODUCT}/TIN-2/thumbnail", headers=admin).status_code == 200
    assert client.delete(f"{PRODUCT}/TIN-1/image", headers=admin).status_code == 404
    delta = HubCatalog(api_db, STORE).delta(4)
    assert delta is not None and [(p.sku, p.thumbnail) for p in delta.upserts] == [("TIN-1", b"")]


def test_a_noisy_or_transparent_picture_still_gets_a_thumbnail_within_the_limit(
    client: TestClient[Any], bearer: Bearer
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    created(client, admin, "TIN-2", 2)
    assert upload(client, admin, "TIN-1", noise((600, 400)), "image/png").status_code == 200
    assert upload(client, admin, "TIN-2", picture("PNG", (90, 300)), "image/png").status_code == 200
    for sku, size in (("TIN-1", (160, 107)), ("TIN-2", (48, 160))):
        data = client.get(f"{PRODUCT}/{sku}/thumbnail", headers=admin).content
        assert len(data) <= MAX_THUMBNAIL_BYTES
        with Image.open(io.BytesIO(data)) as small:
            assert small.size == size and max(small.size) <= max(THUMBNAIL_BOX)
            assert small.mode == "RGB"


def test_what_is_not_a_jpeg_png_or_webp_picture_is_refused(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    gif = picture("GIF", (50, 50))
    assert upload(client, admin, "TIN-1", gif, "image/gif").status_code == 415
    assert upload(client, admin, "TIN-1", gif, "image/png").status_code == 415  # it is a GIF
    garbage = upload(client, admin, "TIN-1", b"\x89PNG\r\n\x1a\nnot really", "image/png")
    assert garbage.status_code == 422
    assert garbage.json()["errors"][0]["field"] == "body"
    truncated = picture("JPEG", (400, 400))[:300]
    assert upload(client, admin, "TIN-1", truncated, "image/jpeg").status_code == 422
    webp = upload(client, admin, "TIN-1", picture("WEBP", (64, 64)), "image/webp; q=1")
    assert webp.status_code == 200
    too_big = upload(client, admin, "TIN-1", b"\0" * (MAX_IMAGE_BYTES + 1), "image/png")
    assert too_big.status_code == 413
    assert upload(client, admin, "NOPE", picture(), "image/png").status_code == 404
    stale = upload(client, admin, "TIN-1", picture(), "image/png", **{"If-Match": '"1"'})
    assert (stale.status_code, stale.json()["version"]) == (412, 2)
    assert HubCatalog(api_db, STORE).version() == 2  # only the WebP made a version


def test_another_stores_picture_is_not_found(client: TestClient[Any], bearer: Bearer) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    upload(client, admin, "TIN-1", picture(), "image/png")
    graz = bearer("write", store="graz-1")
    assert client.get(f"{PRODUCT}/TIN-1/image", headers=graz).status_code == 404
    assert client.get(f"{PRODUCT}/TIN-1/thumbnail", headers=graz).status_code == 404
    assert upload(client, graz, "TIN-1", picture("JPEG"), "image/jpeg").status_code == 404
    assert client.delete(f"{PRODUCT}/TIN-1/image", headers=graz).status_code == 404
