"""Product pictures on disk: checked, written once per content, collected; rows keep names."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peewee import SqliteDatabase
from PIL import Image

from appliance.errors import CatalogSyncError
from appliance.store import thumbnails
from appliance.store.catalog import SqliteCatalog
from appliance.store.catalog_versions import CatalogVersions, ProductRows
from appliance.store.database import open_database
from appliance.store.memory_catalog import MemoryCatalog
from appliance.store.migrations import MIGRATIONS, migrate
from appliance.store.thumbnails import (
    FOLDER_NAME,
    NoRoomForPictureError,
    ThumbnailFolder,
    folder_beside,
    pack_name,
    picture_name,
    unpack_name,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def picture(colour: tuple[int, int, int], kind: str = "JPEG", size: int = 32) -> bytes:
    """A small picture of one colour."""
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, kind)
    return out.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> ThumbnailFolder:
    return ThumbnailFolder(tmp_path / FOLDER_NAME)


def test_a_picture_is_one_file_named_by_its_content(folder: ThumbnailFolder) -> None:
    jpeg, png = picture((1, 2, 3)), picture((4, 5, 6), "PNG")
    name = folder.put(jpeg)
    assert name == hashlib.sha256(jpeg).hexdigest() + ".jpg"
    assert folder.put(jpeg) == name  # sent again: not written again
    assert folder.put(png).endswith(".png")
    assert folder.written == 2
    assert sorted(p.name for p in folder.folder.iterdir()) == sorted(folder.names())
    assert Path(folder.path(name)).read_bytes() == jpeg
    assert not [p for p in folder.folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8\xff not really a JPEG",
        picture((9, 9, 9))[:100],  # truncated
        picture((9, 9, 9), "GIF"),
        picture((9, 9, 9), "PNG", size=1025),  # more pixels than a thumbnail has
    ],
    ids=["empty", "garbage", "truncated", "gif", "too many pixels"],
)
def test_what_is_no_picture_is_refused_and_never_written(
    folder: ThumbnailFolder, data: bytes
) -> None:
    with pytest.raises(CatalogSyncError):
        folder.put(data)
    assert folder.written == 0 and folder.names() == set()


def test_a_picture_is_not_written_where_it_would_eat_into_the_room_kept(tmp_path: Path) -> None:
    data = picture((5, 6, 7))
    free = {"bytes": 10_000 + len(data) - 1}
    asked: list[Path] = []

    def free_bytes(where: Path) -> int:
        asked.append(where)
        return free["bytes"]

    folder = ThumbnailFolder(tmp_path / FOLDER_NAME, keep_free=10_000, free=free_bytes)
    with pytest.raises(NoRoomForPictureError, match="10000 kept"):
        folder.put(data)
    assert folder.written == 0 and not folder.folder.exists()
    free["bytes"] += 1  # exactly the room kept is left after it: written
    name = folder.put(data)
    assert folder.written == 1 and folder.names() == {name}
    free["bytes"] = 0
    assert folder.put(data) == name  # there already: costs no room
    with pytest.raises(CatalogSyncError):  # no picture stays no picture, room or not
        folder.put(b"garbage")
    assert asked == [tmp_path / FOLDER_NAME] * 2
    # The real count: the partition of the folder, or of its parent before it is made.
    assert thumbnails.free_bytes(tmp_path / "not yet") > 0


def test_a_new_folder_is_made_durable_in_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(thumbnails, "_fsync_directory", synced.append)
    folder = ThumbnailFolder(tmp_path / "data" / FOLDER_NAME)
    folder.put(picture((1, 2, 3)))
    folder.put(picture((3, 2, 1)))
    folder.sync()
    assert synced == [tmp_path / "data", tmp_path / "data" / FOLDER_NAME]


def test_a_picture_over_the_limit_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    small = ThumbnailFolder(tmp_path, max_bytes=100)
    with pytest.raises(CatalogSyncError, match="more than 100"):
        small.put(picture((1, 1, 1)))
    assert picture_name(picture((1, 1, 1))).endswith(".jpg")


def test_collect_removes_what_no_product_shows_and_what_a_crash_left(
    folder: ThumbnailFolder,
) -> None:
    kept, dropped = folder.put(picture((1, 1, 1))), folder.put(picture((2, 2, 2)))
    half_written = folder.folder / f".{dropped}.123.tmp"
    half_written.write_bytes(b"\xff\xd8")
    other = folder.folder / "README"  # not ours: left alone
    other.write_text("notes")
    assert folder.collect({kept}) == 2
    assert {p.name for p in folder.folder.iterdir()} == {kept, "README"}


def test_a_picture_name_packs_into_33_bytes_and_back() -> None:
    for kind, suffix in (("JPEG", ".jpg"), ("PNG", ".png")):
        name = picture_name(picture((7, 7, 7), kind))
        packed = pack_name(name)
        assert len(packed) == 33 and unpack_name(packed) == name and name.endswith(suffix)
    assert pack_name("") == b"" and unpack_name(b"") == ""


def test_the_folder_lies_beside_the_database(tmp_path: Path) -> None:
    assert folder_beside(tmp_path / "appliance.db") == tmp_path / FOLDER_NAME
    assert folder_beside(":memory:") is None


def _row(sku: str, *, description: str | None, thumbnail: str | None) -> tuple[object, ...]:
    return (sku, f"Product {sku}", "{}", 199, "EUR", "standard", "", 0, 1, "each", None,
            description, thumbnail, None, None)  # fmt: skip


def test_rows_keep_the_picture_name_and_a_local_import_keeps_it_too(db: SqliteDatabase) -> None:
    name = picture_name(picture((3, 3, 3)))
    versions = CatalogVersions(db)
    with versions.transaction():
        written = versions.write_products(
            ProductRows([_row("A", description="About A", thumbnail=name)], []), NOW
        )
    assert not written.pictures_dropped
    catalog = SqliteCatalog(db)
    product = catalog.by_sku("A")
    assert product is not None and product.thumbnail == name
    catalog.upsert([(product, 5)])  # a local import knows no pictures or descriptions
    assert catalog.by_sku("A").thumbnail == name  # type: ignore[union-attr]
    assert db.execute_sql("SELECT description FROM product").fetchone()[0] == "About A"
    assert versions.pictures() == {name}

    memory = MemoryCatalog(catalog)
    memory.refresh()
    assert memory.by_sku("A") == catalog.by_sku("A")
    assert memory.picture_path(name) == catalog.picture_path(name) != ""

    with versions.transaction():  # the hub sends it without a picture: the name goes
        written = versions.write_products(
            ProductRows([_row("A", description="", thumbnail="")], []), NOW
        )
    assert written.pictures_dropped and versions.pictures() == set()
    assert catalog.by_sku("A").thumbnail == ""  # type: ignore[union-attr]


def test_migration_11_gives_products_of_an_older_database_no_picture(tmp_path: Path) -> None:
    db = open_database(tmp_path / "v10.db")
    for migration in MIGRATIONS:
        if migration.version <= 10:
            for statement in migration.statements:
                db.execute_sql(statement)
    db.execute_sql("PRAGMA user_version = 10")
    db.execute_sql(
        "INSERT INTO product (sku, name, price_minor, currency, tax_class, updated_at)"
        " VALUES ('OLD', 'Old product', 100, 'EUR', 'standard', '2026-01-01T00:00:00+00:00')"
    )
    assert [m.version for m in migrate(db)][:2] == [11, 12]  # and any later ones
    product = SqliteCatalog(db).by_sku("OLD")
    assert product is not None and product.thumbnail == ""
    assert (product.bag_grams, product.bag_tolerance) == (None, None)  # migration 12
    db.close()
