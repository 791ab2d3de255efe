"""Product pictures on the kiosk: browse and basket rows show the file, read off the main thread.

The pictures arrive as the hub sends them (a catalog delta applied by CatalogSync to the
kiosk's own database); the rows are the real RecycleView rows of the running app.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from msgspec.structs import replace
from PIL import Image

from appliance.core.events import Event, EventBus
from appliance.mqtt.catalog_products import payload_from_product
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.payloads import CatalogDelta
from appliance.screens import pictures
from appliance.screens.customer.browse import ProductRow
from appliance.screens.pictures import PictureLoader, PictureRead, PictureUnread, Thumbnail
from appliance.screens.widgets import CartRow
from appliance.store.catalog import SqliteCatalog
from tests.screens.customer_steps import CHOCOLATE_NAME, cart_row, shown, tap_in
from tests.screens.harness import Kiosk

PICTURED = {"CHOC-100": (120, 60, 20), "COFFEE-250": (60, 40, 20)}
GONE = "COFFEE-250"  # its file is removed after the sync: the row shows the placeholder


def jpeg(colour: tuple[int, int, int]) -> bytes:
    """A 160x160 JPEG of one colour, as the hub sends a thumbnail."""
    out = io.BytesIO()
    Image.new("RGB", (160, 160), colour).save(out, "JPEG", quality=85)
    return out.getvalue()


def give_pictures(kiosk: Kiosk) -> dict[str, str]:
    """The hub sends the pictured products again with pictures; their files by SKU."""
    db = kiosk.services.app.db
    catalog = SqliteCatalog(db)
    upserts = []
    for sku, colour in PICTURED.items():
        product = catalog.by_sku(sku)
        assert product is not None
        upserts.append(replace(payload_from_product(product), thumbnail=jpeg(colour)))
    sync = CatalogSync(db, kiosk.services.app.settings.device.id, lambda _t, _d: None)
    assert sync.apply_delta(CatalogDelta(from_version=0, to_version=1, upserts=upserts)) == (
        "applied"
    )
    lookup = kiosk.services.app.lookup
    kiosk.wait_for(
        lambda: all(lookup.by_sku(sku).thumbnail for sku in PICTURED),  # type: ignore[union-attr]
        what="the catalog in memory to know the pictures",
    )
    paths = {sku: lookup.picture_path(lookup.by_sku(sku).thumbnail) for sku in PICTURED}  # type: ignore[union-attr]
    Path(paths[GONE]).unlink()
    return paths


def rows_showing(kiosk: Kiosk, skus: Iterable[str]) -> dict[str, ProductRow] | None:
    """The visible result rows by SKU, once those of `skus` are all among them."""
    found = {row.sku: row for row in shown(kiosk, ProductRow)}
    return found if set(skus) <= found.keys() else None


def thumbnail_of(row: object) -> Thumbnail:
    """The picture widget of a list row."""
    found = [w for w in row.walk(restrict=True) if isinstance(w, Thumbnail)]  # type: ignore[attr-defined]
    assert len(found) == 1
    return found[0]


def test_browse_and_basket_rows_show_the_picture_file_and_let_it_go(
    kiosk: Kiosk, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = give_pictures(kiosk)
    readers: list[str] = []
    read = pictures._read

    def reading(source: str, edge: int) -> object:
        readers.append(threading.current_thread().name)
        return read(source, edge)

    monkeypatch.setattr(pictures, "_read", reading)
    kiosk.tap_text("Start")
    kiosk.wait_for_screen("shop")
    kiosk.tap_text("Find an item")
    kiosk.wait_for_screen("browse")
    kiosk.wait_for(lambda: "Grocery" in kiosk.app.browse.categories, what="the categories")
    with caplog.at_level(logging.DEBUG, "appliance.screens.pictures"):
        kiosk.tap_text("Grocery")
        kiosk.wait_for(lambda: kiosk.app.browse.with_pictures, what="results with pictures")
        rows = kiosk.wait_for(lambda: rows_showing(kiosk, PICTURED), what="the pictured rows")
        chocolate = thumbnail_of(rows["CHOC-100"])
        assert chocolate.source == paths["CHOC-100"] and Path(chocolate.source).is_file()
        kiosk.wait_for(lambda: chocolate.texture is not None, what="the chocolate's picture")
        assert max(chocolate.texture.size) <= chocolate.edge  # read at the size drawn
        # A row without a picture, and one whose file is gone, show the placeholder.
        others = [r for r in shown(kiosk, ProductRow) if r.sku not in PICTURED]
        assert others and all(thumbnail_of(r).source == "" for r in others)
        coffee = thumbnail_of(rows[GONE])
        assert coffee.source == paths[GONE]
        kiosk.pump(10)
        assert coffee.texture is None and all(thumbnail_of(r).texture is None for r in others)
        kiosk.screenshot("customer-browse-pictures")

        tap_in(kiosk, rows["CHOC-100"], "Add")
        kiosk.wait_for(lambda: kiosk.app.cart.items == 1, what="the chocolate in the cart")
        # Back to the categories: the result rows leave their list and let their textures go.
        kiosk.tap_text("Categories")
        kiosk.wait_for(lambda: not kiosk.app.browse.results, what="the categories")
        kiosk.pump(3)
        assert rows["CHOC-100"].parent is None and chocolate.texture is None

        kiosk.tap_text("Back to basket")
        kiosk.wait_for_screen("shop")
        basket = thumbnail_of(cart_row(kiosk, CHOCOLATE_NAME))
        assert basket.source == paths["CHOC-100"]
        kiosk.wait_for(lambda: basket.texture is not None, what="the picture in the basket")
        kiosk.screenshot("customer-basket-pictures")
    # Every file was read on the loader's thread, never in a frame.
    assert readers and set(readers) == {"picture-loader"}
    # The missing file was no error: debug only.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(paths[GONE] in r.getMessage() for r in caplog.records)


def test_a_catalog_without_pictures_shows_no_picture_column(kiosk: Kiosk) -> None:
    kiosk.tap_text("Start")
    kiosk.wait_for_screen("shop")
    kiosk.scan("7613289024044")
    row = cart_row(kiosk, CHOCOLATE_NAME)
    picture = thumbnail_of(row)
    assert not kiosk.app.cart.with_pictures and picture.source == ""
    assert picture.width == 0 and isinstance(row, CartRow)


def delivered(bus: EventBus, wanted: type[Event]) -> list[Event]:
    """Deliver the bus's events until one of type `wanted` came; all those delivered."""
    seen: list[Event] = []
    bus.subscribe(Event, seen.append)
    for _ in range(200):  # a generous bound: a read of a small file takes milliseconds
        bus.wait(0.05)
        bus.drain()
        if any(isinstance(e, wanted) for e in seen):
            return seen
    raise AssertionError(f"no {wanted.__name__} within 10 s; delivered {seen}")


def test_an_unreadable_picture_frees_its_row_to_ask_again(kiosk: Kiosk, tmp_path: Path) -> None:
    # `kiosk`: the tile's canvas rule reads the running app's theme.
    bus = EventBus()
    loader = PictureLoader(bus)
    broken = tmp_path / ("b" * 64 + ".jpg")
    broken.write_bytes(jpeg((10, 20, 30))[:200])  # a torn file: the disk's doing
    thumbnail = Thumbnail()
    thumbnail.source = str(broken)  # not in a list: the widget asks no loader by itself
    thumbnail._ticket = loader.request(thumbnail, str(broken), 64)
    events = delivered(bus, PictureUnread)
    assert [type(e) for e in events] == [PictureUnread]
    # The row shows the placeholder and holds no ticket, so it asks again when next shown.
    assert thumbnail.texture is None and thumbnail._ticket == 0
    broken.write_bytes(jpeg((10, 20, 30)))
    thumbnail._ticket = loader.request(thumbnail, str(broken), 64)
    delivered(bus, PictureRead)
    assert thumbnail.texture is not None and thumbnail._ticket == 0 and loader.read == 1


def test_the_loader_loads_again_after_its_worker_failed_to_post(
    kiosk: Kiosk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus()
    loader = PictureLoader(bus)
    source = tmp_path / ("c" * 64 + ".jpg")
    source.write_bytes(jpeg((200, 10, 10)))
    post = bus.post
    failing = threading.Event()

    def post_once_failing(event: Event) -> None:
        if not failing.is_set():
            failing.set()
            raise RuntimeError("the bus refused the event")
        post(event)

    monkeypatch.setattr(bus, "post", post_once_failing)
    first = Thumbnail()
    first.source = str(source)
    first._ticket = loader.request(first, str(source), 64)
    assert failing.wait(10)
    for _ in range(200):  # a generous bound: the worker ends just after its post raised
        if not loader._running:
            break
        failing.wait(0.05)
    second = Thumbnail()
    second.source = str(source)
    second._ticket = loader.request(second, str(source), 64)
    delivered(bus, PictureRead)
    assert second.texture is not None and second._ticket == 0
    assert first.texture is None and loader.read == 1
