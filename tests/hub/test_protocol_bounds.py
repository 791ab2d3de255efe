"""Versions and integer bounds, from the outside: a raw MQTT client against `serve`'s worker.

A message with a nested struct of a newer `v`, or an integer a 64-bit column (or a
JavaScript number) cannot hold, is malformed: counted, never acknowledged, never stored,
and it never crashes the worker's handler.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.payloads import MAX_SAFE, SalesAck, decode, encode
from hub.models import Device, Sale
from hub.server import HubServer
from tests.hub.test_ingest import batch, sale_document
from tests.hub.test_server import DeviceClient, wait_until

DEVICE = "kiosk-1"


def good_batch_json(seqs: list[int]) -> dict[str, object]:
    """A well-formed batch as plain JSON, to be spoiled by a test."""
    result: dict[str, object] = json.loads(encode(batch(DEVICE, seqs)))
    return result


def first_ack_after_a_good_batch(device: DeviceClient) -> SalesAck:
    """Send a good seq 1 and return the first ack that arrives on the topic at all."""
    device.publish(topics.sales_up(DEVICE), encode(batch(DEVICE, [1])))
    return decode(device.next(topics.sales_ack(DEVICE)).payload, SalesAck)


def spoiled(path: Callable[[dict[str, object]], None]) -> bytes:
    """A batch of seq 1 with one field changed by `path`."""
    data = good_batch_json([1])
    path(data)
    return json.dumps(data).encode()


def set_in_envelope(key: str, value: object) -> Callable[[dict[str, object]], None]:
    """Change an envelope field (a `seq` in the document too, so only the range is wrong)."""

    def change(data: dict[str, object]) -> None:
        sales = data["sales"]
        assert isinstance(sales, list)
        sales[0][key] = value
        if key == "seq":
            sales[0]["document"]["sequence"] = value

    return change


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (spoiled(set_in_envelope("v", 2)), "a v1 batch holding a v2 envelope"),
        (spoiled(set_in_envelope("seq", 2**63)), "seq 2^63"),
        (spoiled(set_in_envelope("seq", MAX_SAFE + 1)), "seq beyond 2^53 - 1"),
        (spoiled(set_in_envelope("seq", -(2**70))), "seq -2^70"),
        (spoiled(lambda d: d.update(acked_upto=2**64)), "acked_upto 2^64"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_sales_batch_out_of_version_or_range_is_malformed_and_never_acked(
    serving_hub: HubServer, hub_db: Database, device: DeviceClient, bad: bytes, why: str
) -> None:
    server, db = serving_hub, hub_db
    device.publish(topics.sales_up(DEVICE), bad)

    ack = first_ack_after_a_good_batch(device)

    assert ack.upto_seq == 1, why  # the first answer on the topic is the good batch's
    assert not ack.rejected
    assert server.stats.malformed == 1, why
    assert server.stats.failures == 0, why  # no handler raised: no traceback
    assert [s.seq for s in Sale.select(Sale.seq).execute(db)] == [1]


def test_a_telemetry_figure_out_of_range_is_malformed_and_not_stored(
    serving_hub: HubServer, hub_db: Database, device: DeviceClient
) -> None:
    server, db = serving_hub, hub_db
    report = {
        "v": 1, "device": DEVICE, "at": "2030-01-15T12:00:00+00:00", "firmware": "1.0",
        "uptime_s": 1.0, "outbox_depth": 2**70, "catalog_version": 0, "disk_free_bytes": 0,
    }  # fmt: skip
    device.publish(topics.health(DEVICE), json.dumps(report).encode())
    wait_until(lambda: server.stats.malformed == 1)
    assert server.stats.failures == 0
    assert Device.select().where(Device.telemetry.is_null(False)).count(db) == 0


def test_a_sale_document_with_a_total_of_2_to_the_70_is_rejected_not_a_crash(
    serving_hub: HubServer, hub_db: Database, device: DeviceClient
) -> None:
    server, db = serving_hub, hub_db
    document = json.loads(sale_document(DEVICE, 1))
    document["total"] = 2**70
    data = good_batch_json([1])
    sales = data["sales"]
    assert isinstance(sales, list)
    sales[0]["document"] = document
    device.publish(topics.sales_up(DEVICE), json.dumps(data).encode())

    ack = decode(device.next(topics.sales_ack(DEVICE)).payload, SalesAck)

    assert [(r.seq, r.code) for r in ack.rejected] == [(1, "invalid")]
    assert "total" in ack.rejected[0].reason
    assert server.stats.failures == 0
    assert Sale.select().count(db) == 0
