"""Prepared: a statement's SQL rendered once per shape, and peewee's own when values differ."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peewee import Database

from hub.models import Device, DeviceProgress
from hub.prepared import Prepared
from tests.hub.databases import KINDS, each_kind


@pytest.fixture(params=KINDS)
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind."""
    yield from each_kind(request, tmp_path, "postgres")


class Builds:
    """A query builder that counts how often it is asked (peewee renders each one)."""

    def __init__(self) -> None:
        self.calls = 0

    def progress(self, device: str, upto: int) -> Any:
        """The INSERT of a device's progress row."""

        def build() -> Any:
            self.calls += 1
            return DeviceProgress.insert(device=device, upto_seq=upto, rejected=0)

        return build


def progress_rows(db: Database) -> list[tuple[str, int]]:
    """Every progress row, by device."""
    query = DeviceProgress.select(DeviceProgress.device, DeviceProgress.upto_seq)
    return [(str(d), int(u)) for d, u in query.order_by(DeviceProgress.device).tuples().execute(db)]


def test_a_shape_is_rendered_once_and_bound_with_each_runs_values(hub_db: Database) -> None:
    prepared, builds = Prepared(hub_db), Builds()
    for k in range(1, 4):
        device = f"kiosk-{k}"
        assert prepared.count("insert", [device, 10 * k, 0], builds.progress(device, 10 * k)) == 1
    assert builds.calls == 1  # only the first run rendered
    assert progress_rows(hub_db) == [("kiosk-1", 10), ("kiosk-2", 20), ("kiosk-3", 30)]
    assert prepared.unsafe() == []


def test_values_in_another_order_than_peewees_run_peewees_query_each_time(
    hub_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    prepared, builds = Prepared(hub_db), Builds()
    with caplog.at_level(logging.WARNING, logger="hub.prepared"):
        for k in range(1, 3):
            device = f"kiosk-{k}"
            # The caller got the order wrong: its values would land in the wrong columns.
            prepared.count("insert", [10 * k, device, 0], builds.progress(device, 10 * k))
    assert progress_rows(hub_db) == [("kiosk-1", 10), ("kiosk-2", 20)]  # still right
    assert builds.calls == 3  # the check, then peewee's query for each run
    assert prepared.unsafe() == ["insert"]
    assert [r.name for r in caplog.records] == ["hub.prepared"]  # said once, not per run


def test_rows_returns_a_selects_tuples_for_each_shape(hub_db: Database) -> None:
    for k in range(1, 4):
        Device.insert(id=f"kiosk-{k}", bd_seq=k).execute(hub_db)
    prepared = Prepared(hub_db)

    def among(ids: list[str]) -> Any:
        return lambda: Device.select(Device.id, Device.bd_seq).where(Device.id.in_(ids))

    two = ["kiosk-1", "kiosk-3"]
    assert sorted(prepared.rows(("among", 2), two, among(two))) == [("kiosk-1", 1), ("kiosk-3", 3)]
    one = ["kiosk-2"]
    assert prepared.rows(("among", 1), one, among(one)) == [("kiosk-2", 2)]
    other = ["kiosk-2", "kiosk-3"]
    found = prepared.rows(("among", 2), other, among(["never", "used"]))  # the cached SQL ran
    assert sorted(found) == [("kiosk-2", 2), ("kiosk-3", 3)]


def test_past_the_shape_limit_new_shapes_are_rendered_each_time(
    hub_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub.prepared.MAX_SHAPES", 2)
    prepared, builds = Prepared(hub_db), Builds()
    for k in range(1, 5):
        device = f"kiosk-{k}"
        prepared.count(("insert", k), [device, k, 0], builds.progress(device, k))
    assert builds.calls == 4  # two shapes kept, two more rendered without keeping them
    assert progress_rows(hub_db) == [(f"kiosk-{k}", k) for k in range(1, 5)]
    assert prepared.shapes() == 2
