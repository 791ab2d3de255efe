"""The appliance's sales uploader against the real hub: a rejected sale is quarantined.

The device is the real SalesUploader over a real mosquitto; the hub is the worker
`appliance-hub serve` runs. A sale the hub rejects (one it cannot read, one at a sequence
it holds for another sale) leaves the outbox for the quarantine table, telemetry counts
it, and the rest of the outbox drains.
"""

from __future__ import annotations

import json
from pathlib import Path

from peewee import Database

from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import SaleRejection, SalesAck, SalesBatch, Telemetry, decode
from appliance.mqtt.telemetry import TelemetryBuilder, TelemetryPublisher
from appliance.mqtt.uploader import SalesStream, SalesUploader
from hub.ingest import SalesIngest
from hub.models import Device, Sale
from hub.models import SaleRejection as RejectionRow
from hub.server import HubServer
from tests.hub.test_ingest import envelope
from tests.mqtt.fake_hub import DeviceStore, eventually
from tests.store.crash_writer import DEVICE_ID

WAIT = 20.0


def spoil_outbox_row(store: DeviceStore, seq: int) -> None:
    """Make the outbox's copy of sale `seq` one the hub cannot read (no lines)."""
    (payload,) = store.db.execute_sql(
        "SELECT payload FROM outbox WHERE sequence = ?", (seq,)
    ).fetchone()
    body = json.loads(bytes(payload))
    del body["lines"]
    store.db.execute_sql(
        "UPDATE outbox SET payload = ? WHERE sequence = ?", (json.dumps(body).encode(), seq)
    )


def quarantine(store: DeviceStore) -> list[tuple[int, str, str]]:
    """(seq, sale_id, code) of every quarantined sale."""
    rows = store.db.execute_sql("SELECT seq, sale_id, code FROM sale_quarantine ORDER BY seq")
    return [(int(s), str(i), str(c)) for s, i, c in rows]


def test_rejected_sales_are_quarantined_counted_and_the_rest_drains(
    serving_hub: HubServer,
    hub_db: Database,
    store: DeviceStore,
    link: PahoHubLink,
    tmp_path: Path,
) -> None:
    ids = store.sell(6)
    spoil_outbox_row(store, 4)
    # The hub holds seq 2 for a sale of this device's earlier life (a reflashed device).
    earlier = SalesBatch(device=DEVICE_ID, sales=[envelope(DEVICE_ID, 2, sale_id="earlier-2")])
    SalesIngest(hub_db).apply(DEVICE_ID, earlier)

    uploader = SalesUploader(store.outbox, link)
    with uploader:
        link.open()
        assert uploader.wait_for(lambda s: s.acked_upto == 6, WAIT), uploader.stats()

        assert store.outbox.depth() == 0
        assert quarantine(store) == [(2, ids[1], "conflict"), (4, ids[3], "invalid")]
        (conflict, invalid) = store.outbox.quarantined()
        assert conflict.reason == "seq 2 holds sale earlier-2"
        assert conflict.receipt_number  # staff find the receipt by its number
        assert "lines" in invalid.reason
        held = Sale.select(Sale.seq, Sale.sale_id).order_by(Sale.seq).tuples().execute(hub_db)
        assert list(held) == [(1, ids[0]), (2, "earlier-2"), (3, ids[2]), (5, ids[4]), (6, ids[5])]
        kept = RejectionRow.select(RejectionRow.seq).order_by(RejectionRow.seq)
        assert [r.seq for r in kept.execute(hub_db)] == [2, 4]

        # Telemetry tells the fleet admin.
        builder = TelemetryBuilder(DEVICE_ID, store.outbox, lambda: 0, data_dir=tmp_path)
        assert TelemetryPublisher(link, builder).publish_now()
        assert eventually(lambda: reported(hub_db) is not None, WAIT)
        report = reported(hub_db)
        assert report is not None and (report.quarantined_sales, report.outbox_depth) == (2, 0)

        # Later sales drain as before.
        store.sell(2, seed=1)
        uploader.wake()
        assert uploader.wait_for(lambda s: s.acked_upto == 8, WAIT), uploader.stats()
        assert store.outbox.depth() == 0
        assert len(quarantine(store)) == 2


def reported(db: Database) -> Telemetry | None:
    """The device's last telemetry as the hub stored it."""
    text = Device.select(Device.telemetry).where(Device.id == DEVICE_ID).scalar(db)
    return decode(text.encode(), Telemetry) if text else None


def test_each_batch_says_how_far_the_device_applied_acks(store: DeviceStore) -> None:
    ids = store.sell(4)
    stream = SalesStream(store.outbox, DEVICE_ID)

    def next_batch(after: int) -> SalesBatch:
        chunk = stream.next_chunk(after, 10)
        assert chunk is not None
        return decode(chunk.payload, SalesBatch)

    assert next_batch(0).acked_upto == 0
    stream.acknowledge(1, SalesAck(upto_seq=1))
    # Pipelined batches and a restart (after = 0) alike name the oldest row left.
    assert next_batch(3).acked_upto == next_batch(0).acked_upto == 1
    # A rejection naming a sale this device does not hold at that seq moves nothing; one
    # above the ack's upto is not applied yet.
    ack = SalesAck(
        upto_seq=2,
        rejected=[
            SaleRejection(seq=2, sale_id="not-mine", code="conflict", reason="x"),
            SaleRejection(seq=3, sale_id=ids[2], code="invalid", reason="y"),
        ],
    )
    assert stream.acknowledge(2, ack) == 1
    assert quarantine(store) == []
    assert stream.acknowledge(3, ack) == 1
    assert quarantine(store) == [(3, ids[2], "invalid")]
    assert next_batch(3).acked_upto == 3
