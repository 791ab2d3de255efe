"""Product pictures through the real catalog sync: files on disk, one per picture, collected.

The hub end publishes hand-made CatalogDelta and SnapshotChunk messages through a real
mosquitto (the test chooses every picture's bytes); the device end is the same paho client,
Dispatcher and CatalogSync worker as in test_catalog_sync.py.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from msgspec.structs import replace
from peewee import Database, SqliteDatabase
from PIL import Image

from appliance.mqtt.catalog_pictures import STORED, HubPictures
from appliance.mqtt.catalog_products import payload_from_product
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.payloads import CatalogDelta, ProductPayload, SnapshotChunk
from appliance.store.catalog import SqliteCatalog
from appliance.store.catalog_versions import SnapshotStaging
from appliance.store.database import open_database
from appliance.store.memory_catalog import MemoryCatalog
from appliance.store.migrations import migrate
from appliance.store.thumbnails import FOLDER_NAME, MAX_EDGE
from hub.catalog import create_catalog_tables
from hub.db import open_hub_database
from hub.stores import assign_device
from tests.broker import MosquittoBroker
from tests.disks import SmallDisk, small_tmpfs
from tests.mqtt.test_catalog_sync import DEVICE, STORE, DeviceEnd, FakeClock, HubEnd, product


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (96, 96)) -> bytes:
    """A small JPEG of one colour (each colour its own bytes)."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=80)
    return out.getvalue()


def png(colour: tuple[int, int, int], size: tuple[int, int] = (48, 48)) -> bytes:
    """A small PNG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


RED, GREEN, BLUE = jpeg((200, 30, 30)), jpeg((30, 200, 30)), jpeg((30, 30, 200))


def with_picture(number: int, picture: bytes) -> ProductPayload:
    """Product `number` as the hub sends it, with `picture` (b"": none) and a description."""
    payload = payload_from_product(product(number))
    return replace(payload, thumbnail=picture, description=f"About product {number}")


@pytest.fixture
def device_db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    db = open_database(tmp_path / "device" / "appliance.db")
    migrate(db)
    yield db
    db.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the device keeps its pictures: beside its database."""
    return tmp_path / "device" / FOLDER_NAME


@pytest.fixture
def hub_db(tmp_path: Path) -> Iterator[Database]:
    db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    create_catalog_tables(db)
    assign_device(db, DEVICE, STORE)
    yield db
    db.close()


@pytest.fixture
def device(broker: MosquittoBroker, device_db: SqliteDatabase) -> Iterator[DeviceEnd]:
    end = DeviceEnd(broker, device_db, FakeClock())
    yield end
    end.close()


@pytest.fixture
def hub(broker: MosquittoBroker, hub_db: Database) -> Iterator[HubEnd]:
    """A hub that publishes only what the test sends."""
    end = HubEnd(broker, hub_db, answer=False)
    yield end
    end.close()


def files(folder: Path) -> dict[str, bytes]:
    """The pictures on disk by file name."""
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}


def pictures(db: SqliteDatabase) -> dict[str, str]:
    """Each product's picture file name ("" none), as the store holds it."""
    return {p.sku: p.thumbnail for p in SqliteCatalog(db).all_products()}


def snapshot(version: int, products: list[ProductPayload], chunks: int = 1) -> list[SnapshotChunk]:
    """The products cut into `chunks` snapshot chunks of `version`."""
    size = -(-len(products) // chunks)
    return [
        SnapshotChunk(
            store=STORE,
            version=version,
            chunk=k,
            chunks=chunks,
            products=products[k * size : (k + 1) * size],
        )
        for k in range(chunks)
    ]


def delta(start: int, upserts: list[ProductPayload], deletes: tuple[str, ...] = ()) -> CatalogDelta:
    """A delta of the store from `start` to the next version."""
    return CatalogDelta(
        store=STORE,
        from_version=start,
        to_version=start + 1,
        upserts=upserts,
        deletes=list(deletes),
    )


def test_pictures_become_one_file_each_and_unused_ones_are_collected(
    device: DeviceEnd, hub: HubEnd, device_db: SqliteDatabase, folder: Path
) -> None:
    device.connect()
    # P1 and P2 share a picture; P3 has its own; P4 has none.
    products = [
        with_picture(1, RED),
        with_picture(2, RED),
        with_picture(3, GREEN),
        with_picture(4, b""),
    ]
    for chunk in snapshot(1, products, chunks=2):
        hub.send(chunk)
    device.settle(2)
    assert device.sync.version == 1
    held = pictures(device_db)
    on_disk = files(folder)
    assert set(on_disk) == {held["P0001"], held["P0003"]}  # two pictures, two files
    assert held["P0001"] == held["P0002"] and held["P0004"] == ""
    assert on_disk[held["P0001"]] == RED and on_disk[held["P0003"]] == GREEN
    assert held["P0001"].endswith(".jpg")
    description = device_db.execute_sql("SELECT description FROM product WHERE sku = 'P0001'")
    assert description.fetchone()[0] == "About product 1"
    # The staged chunks named the pictures; the staging table never held their bytes.
    assert SnapshotStaging(device_db).state() is None

    # P1 changes to another picture: RED stays (P2 shows it). P3 loses its picture: GREEN goes.
    hub.send(delta(1, [with_picture(1, BLUE), with_picture(3, b"")]))
    device.settle(3)
    held = pictures(device_db)
    assert held["P0003"] == "" and held["P0001"] != held["P0002"]
    assert set(files(folder)) == {held["P0001"], held["P0002"]}
    assert files(folder)[held["P0001"]] == BLUE

    # P2 is deleted: nobody shows RED any more.
    hub.send(delta(2, [], ("P0002",)))
    device.settle(4)
    assert set(files(folder)) == {pictures(device_db)["P0001"]}

    # The checkout's in-memory catalog knows the file name, and only that.
    memory = MemoryCatalog(SqliteCatalog(device_db))
    memory.refresh()
    found = memory.by_sku("P0001")
    assert found is not None and found.thumbnail == pictures(device_db)["P0001"]
    assert memory.by_sku("P0004") == SqliteCatalog(device_db).by_sku("P0004")


BAD_PICTURES = {
    "not an image": b"hello, this is no picture",
    "a truncated JPEG": RED[: len(RED) // 2],
    "a GIF": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    "a PNG too wide": png((1, 2, 3), (MAX_EDGE + 1, 1)),
    "a picture the device stored, named by the hub": STORED + b"0" * 64 + b".jpg",
}


def test_a_bad_picture_is_left_out_and_its_product_still_applies(
    device: DeviceEnd,
    hub: HubEnd,
    device_db: SqliteDatabase,
    folder: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    device.connect()
    hub.send(snapshot(1, [with_picture(1, RED)])[0])
    device.settle(1)
    good = pictures(device_db)["P0001"]
    bad = [with_picture(10 + n, data) for n, data in enumerate(BAD_PICTURES.values())]
    repriced = payload_from_product(product(1, price=555))
    with caplog.at_level(logging.WARNING, "appliance.mqtt.catalog_pictures"):
        hub.send(delta(1, [*bad, with_picture(20, png((9, 9, 9))), repriced]))
        device.settle(2)
    assert device.sync.version == 2  # the delta applied, prices and all
    held = pictures(device_db)
    assert {held[p.sku] for p in bad} == {""}
    assert held["P0020"].endswith(".png")
    assert SqliteCatalog(device_db).by_sku("P0001").price.minor == 555  # type: ignore[union-attr]
    assert held["P0001"] == ""  # the product now comes without a picture: its file goes
    assert set(files(folder)) == {held["P0020"]} and good not in files(folder)
    assert device.sync.pictures.refused == len(BAD_PICTURES)
    assert len([r for r in caplog.records if "left out" in r.getMessage()]) == len(BAD_PICTURES)


def test_a_snapshot_staged_with_pictures_keeps_their_files_until_it_applies(
    device: DeviceEnd, hub: HubEnd, device_db: SqliteDatabase, folder: Path
) -> None:
    device.connect()
    hub.send(snapshot(1, [with_picture(1, RED), with_picture(2, b"")])[0])
    device.settle(1)
    # Half of snapshot v5 arrives; its picture is on disk though no product shows it yet.
    first, second = snapshot(5, [with_picture(1, RED), with_picture(2, GREEN)], chunks=2)
    hub.send(second)
    device.settle(2)
    staged = device_db.execute_sql("SELECT body FROM catalog_snapshot_chunk").fetchall()
    assert len(staged) == 1 and GREEN not in bytes(staged[0][0])  # a name, not the bytes
    # A delta that drops a picture meanwhile collects, but not the staged snapshot's.
    hub.send(delta(1, [with_picture(1, b"")]))
    device.settle(3)
    assert len(files(folder)) == 2  # RED (no product shows it now) and GREEN (staged) stay

    device.sync.stop()  # the appliance restarts; the rest of the snapshot arrives after
    restarted = DeviceEnd(device.broker, device_db, FakeClock())
    try:
        restarted.connect()
        hub.send(first)
        restarted.settle(1)
        assert restarted.sync.version == 5
        held = pictures(device_db)
        assert files(folder) == {held["P0001"]: RED, held["P0002"]: GREEN}
    finally:
        restarted.close()


def test_without_a_folder_pictures_are_left_out(clock_free_db: SqliteDatabase) -> None:
    sync = CatalogSync(clock_free_db, DEVICE, lambda _t, _d: None)
    chunk = SnapshotChunk(version=1, chunk=0, chunks=1, products=[with_picture(1, RED)])
    assert sync.add_chunk(chunk) == "applied"
    assert pictures(clock_free_db) == {"P0001": ""}


@pytest.fixture
def clock_free_db() -> Iterator[SqliteDatabase]:
    """An in-memory database: it has no folder beside it."""
    db = open_database(":memory:")
    migrate(db)
    yield db
    db.close()


def test_a_local_import_keeps_the_pictures_the_hub_sent(
    device_db: SqliteDatabase, folder: Path
) -> None:
    sync = CatalogSync(device_db, DEVICE, lambda _t, _d: None)
    chunk = SnapshotChunk(version=1, chunk=0, chunks=1, products=[with_picture(1, RED)])
    assert sync.add_chunk(chunk) == "applied"
    name = pictures(device_db)["P0001"]
    SqliteCatalog(device_db).upsert([(dataclasses.replace(product(1), name="Renamed"), None)])
    assert pictures(device_db)["P0001"] == name and set(files(folder)) == {name}


def noise(seed: int) -> bytes:
    """A 160x160 JPEG of noise: about 16 KB, as a photo's thumbnail weighs."""
    pixels = random.Random(seed).randbytes(160 * 160 * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (160, 160), pixels).save(out, "JPEG", quality=75)
    return out.getvalue()


def free_on(disk: SmallDisk) -> int:
    """The bytes free on `disk`, as the storage watch counts them."""
    stat = os.statvfs(disk.path)
    return stat.f_bavail * stat.f_frsize


@pytest.fixture
def picture_disk(folder: Path, tmp_path: Path) -> Iterator[SmallDisk]:
    """The picture folder on a tmpfs of 1 MiB that fills up for real (needs root)."""
    with small_tmpfs(folder, 1024) as disk:
        yield disk


def test_pictures_stop_above_the_reserve_and_products_keep_theirs(
    device_db: SqliteDatabase,
    folder: Path,
    picture_disk: SmallDisk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reserve = 128 * 1024  # pictures leave twice this free
    sync = CatalogSync(
        device_db, DEVICE, lambda _t, _d: None,
        pictures=HubPictures.beside(device_db.database, reserve_bytes=reserve),
    )  # fmt: skip
    assert sync.add_chunk(snapshot(1, [with_picture(1, RED)])[0]) == "applied"
    red = pictures(device_db)["P0001"]
    filler = picture_disk.fill(leave_bytes=2 * reserve + 40 * 1024)  # room for two or so
    heavy = [with_picture(n, noise(n)) for n in range(2, 12)]
    with caplog.at_level(logging.WARNING, "appliance.mqtt.catalog_pictures"):
        # P1 comes last with a new picture: there is no room left for it by then.
        assert sync.apply_delta(delta(1, [*heavy, with_picture(1, noise(1))])) == "applied"
    held = pictures(device_db)
    written = [p.sku for p in heavy if held[p.sku]]
    assert 1 <= len(written) <= 3 and held["P0001"] == red  # P1 keeps its picture
    assert {held[p.sku] for p in heavy if p.sku not in written} == {""}  # new: none yet
    assert red in files(folder) and free_on(picture_disk) >= 2 * reserve
    assert sync.pictures.skipped == len(heavy) - len(written) + 1
    said = [r for r in caplog.records if r.name == "appliance.mqtt.catalog_pictures"]
    assert len(said) == 1  # once, not once per picture (other loggers may be on at INFO)
    # A snapshot staged while there is no room keeps P1's picture too.
    chunks = snapshot(3, [with_picture(1, noise(1)), *heavy], chunks=2)
    assert [sync.add_chunk(chunk) for chunk in chunks] == ["staged", "applied"]
    assert pictures(device_db)["P0001"] == red and red in files(folder)

    filler.unlink()  # room again: the next time the hub sends P1, its picture is written
    assert sync.apply_delta(delta(3, [with_picture(1, BLUE)])) == "applied"
    assert files(folder)[pictures(device_db)["P0001"]] == BLUE and red not in files(folder)


def test_a_picture_the_disk_refuses_leaves_the_product_its_picture(
    device_db: SqliteDatabase, folder: Path, picture_disk: SmallDisk
) -> None:
    sync = CatalogSync(
        device_db, DEVICE, lambda _t, _d: None,
        pictures=HubPictures.beside(device_db.database, reserve_bytes=0),
    )  # fmt: skip
    assert sync.add_chunk(snapshot(1, [with_picture(1, RED)])[0]) == "applied"
    red = pictures(device_db)["P0001"]
    picture_disk.fill()  # full: the write fails with ENOSPC
    assert sync.apply_delta(delta(1, [with_picture(1, noise(1))])) == "applied"
    assert sync.version == 2 and sync.pictures.skipped == 1
    assert pictures(device_db)["P0001"] == red and files(folder)[red] == RED
