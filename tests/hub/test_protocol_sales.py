"""Sales from the outside: a raw MQTT client, as a second implementer would write it.

The device's side is plain JSON bytes on pos/v1/d/<id>/up/sales and down/sales-ack; the
hub is the worker `appliance-hub serve` runs, over a real mosquitto. A sale the hub cannot
count (a document it cannot read, a sequence or sale id it holds for another sale) is
kept apart, named in the ack and passed, never acked as fine and never dropped; the ack
never goes back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from peewee import Database

from appliance.mqtt import topics
from hub.cli_fleet import fleet
from hub.cli_sales import sales as sales_cli
from hub.models import DeviceProgress, Sale, SaleRejection
from hub.rejections import rejection_counts, rejections
from hub.server import HubServer
from hub.stock_levels import sold_lines
from tests.hub.test_ingest import sale_document, sale_id_of
from tests.hub.test_server import DeviceClient

DEVICE = "kiosk-1"
UP, ACK = topics.sales_up(DEVICE), topics.sales_ack(DEVICE)


def document(seq: int, *, sale_id: str | None = None, total: int = 250) -> bytes:
    """A sale document as a device writes it."""
    return sale_document(DEVICE, seq, sale_id=sale_id, total=total)


def without_lines(seq: int) -> bytes:
    """A document a second implementer got wrong: no `lines`."""
    body = json.loads(document(seq))
    del body["lines"]
    return json.dumps(body).encode()


def batch(*sales: tuple[int, str, bytes], acked_upto: int | None = None) -> bytes:
    """The raw bytes of a SalesBatch; each document is embedded verbatim."""
    envelopes = b",".join(
        b'{"v":1,"seq":%d,"sale_id":%s,"document":%s}' % (seq, json.dumps(sid).encode(), doc)
        for seq, sid, doc in sales
    )
    acked = b"" if acked_upto is None else b',"acked_upto":%d' % acked_upto
    return b'{"v":1,"device":"%s","sales":[%s]%s}' % (DEVICE.encode(), envelopes, acked)


def sale(seq: int) -> tuple[int, str, bytes]:
    """One good sale of the device."""
    return seq, sale_id_of(DEVICE, seq), document(seq)


def send(device: DeviceClient, payload: bytes, correlation: bytes) -> dict[str, Any]:
    """Publish a batch and return the ack answering it (decoded as plain JSON)."""
    device.publish(UP, payload, correlation=correlation)
    message = device.next(ACK)
    assert getattr(message.properties, "CorrelationData", None) == correlation
    answer: dict[str, Any] = json.loads(message.payload)
    return answer


def named(ack: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(seq, sale_id, code) of every rejection an ack names."""
    return [(r["seq"], r["sale_id"], r["code"]) for r in ack.get("rejected", [])]


def stored_seqs(db: Database) -> list[int]:
    """The sequences the hub stored as sales."""
    return [int(s) for (s,) in Sale.select(Sale.seq).order_by(Sale.seq).tuples().execute(db)]


def kept(db: Database) -> list[tuple[int, str, str]]:
    """(seq, sale_id, code) of every rejection the hub keeps."""
    query = SaleRejection.select(SaleRejection.seq, SaleRejection.sale_id, SaleRejection.code)
    return [
        (int(s), str(i), str(c))
        for s, i, c in query.order_by(SaleRejection.seq).tuples().execute(db)
    ]


def progress(db: Database) -> int:
    """The device's stored progress (what `fleet show` reports)."""
    value = DeviceProgress.select(DeviceProgress.upto_seq).where(DeviceProgress.device == DEVICE)
    return int(value.scalar(db) or 0)


def test_a_document_without_lines_is_rejected_named_kept_and_passed(
    serving_hub: HubServer, hub_db: Database, device: DeviceClient, db_path: Path
) -> None:
    db = hub_db
    bad_id = sale_id_of(DEVICE, 2)
    ack = send(device, batch(sale(1), (2, bad_id, without_lines(2)), sale(3)), b"first")

    assert ack["upto_seq"] == 3
    assert named(ack) == [(2, bad_id, "invalid")]
    assert "lines" in ack["rejected"][0]["reason"]
    assert stored_seqs(db) == [1, 3]  # never stored as a sale
    assert kept(db) == [(2, bad_id, "invalid")]
    document_kept = SaleRejection.select(SaleRejection.document).scalar(db)
    assert bytes(document_kept) == without_lines(2)  # byte for byte as sent
    # Every stored sale can be read for stock (what `appliance-hub stock` reads).
    for (text,) in Sale.select(Sale.document).tuples().execute(db):
        sold_lines(text)

    # The next sales are acknowledged past it, and it is not named again.
    ack = send(device, batch(sale(4), acked_upto=3), b"next")
    assert (ack["upto_seq"], named(ack)) == (4, [])

    # The fleet admin sees it.
    assert rejection_counts(db) == {DEVICE: 1}
    assert [(r.seq, r.code) for r in rejections(db, DEVICE)] == [(2, "invalid")]
    listed = CliRunner().invoke(
        sales_cli, ["rejected", "--device", DEVICE, "--json", "--db", f"sqlite:///{db_path}"]
    )
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert (row["device"], row["seq"], row["sale_id"], row["code"]) == (
        DEVICE,
        2,
        bad_id,
        "invalid",
    )
    table = CliRunner().invoke(sales_cli, ["rejected", "--db", f"sqlite:///{db_path}"])
    assert table.exit_code == 0 and "1 rejected sale(s)" in table.output
    shown = CliRunner().invoke(fleet, ["show", DEVICE, "--db", f"sqlite:///{db_path}"])
    assert shown.exit_code == 0, shown.output
    assert f"1, - quarantined on the device (appliance-hub sales rejected --device {DEVICE})" in (
        " ".join(shown.output.split())
    )
    listed = CliRunner().invoke(fleet, ["list", "--json", "--db", f"sqlite:///{db_path}"])
    assert [e["rejected_sales"] for e in json.loads(listed.output)] == [1]


def test_a_reused_seq_is_a_conflict_and_the_ack_never_goes_back(
    serving_hub: HubServer, hub_db: Database, device: DeviceClient
) -> None:
    db = hub_db
    assert send(device, batch(sale(1), sale(2)), b"a")["upto_seq"] == 2

    # A device reflashed to number from 1 again sends another sale as seq 2.
    clash = (2, "new-sale-2", document(2, sale_id="new-sale-2"))
    ack = send(device, batch(clash, acked_upto=2), b"b")
    assert ack["upto_seq"] >= 2
    assert ack["upto_seq"] == progress(db) == 2
    assert named(ack) == []  # at or below what the device applied: nothing to name

    ack = send(device, batch(clash, acked_upto=1), b"c")  # it had applied only 1
    assert ack["upto_seq"] == 2
    assert named(ack) == [(2, "new-sale-2", "conflict")]
    assert ack["rejected"][0]["reason"] == f"seq 2 holds sale {sale_id_of(DEVICE, 2)}"

    ack = send(device, batch(sale(3), acked_upto=2), b"d")
    assert (ack["upto_seq"], named(ack)) == (3, [])
    assert stored_seqs(db) == [1, 2, 3]
    assert kept(db) == [(2, "new-sale-2", "conflict")]


def test_a_sale_id_resent_with_other_content_is_a_conflict_not_a_duplicate(
    serving_hub: HubServer, hub_db: Database, device: DeviceClient
) -> None:
    db = hub_db
    assert send(device, batch(sale(1)), b"a")["upto_seq"] == 1

    changed = (1, sale_id_of(DEVICE, 1), document(1, total=999))
    ack = send(device, batch(changed, sale(2), acked_upto=0), b"b")
    assert ack["upto_seq"] == 2
    assert named(ack) == [(1, sale_id_of(DEVICE, 1), "conflict")]
    assert "other content" in ack["rejected"][0]["reason"]
    assert Sale.select(Sale.total).where(Sale.seq == 1).scalar(db) == 250  # the first copy

    # The same sale id at another sequence is a conflict too.
    moved = (3, sale_id_of(DEVICE, 2), document(3, sale_id=sale_id_of(DEVICE, 2)))
    ack = send(device, batch(moved, acked_upto=2), b"c")
    assert (ack["upto_seq"], named(ack)) == (3, [(3, sale_id_of(DEVICE, 2), "conflict")])
    assert ack["rejected"][0]["reason"] == f"sale {sale_id_of(DEVICE, 2)} is stored at seq 2"


def test_a_lost_ack_is_made_good_by_the_next_one(
    serving_hub: HubServer, device: DeviceClient
) -> None:
    bad = (2, sale_id_of(DEVICE, 2), b'{"id":"%s"}' % sale_id_of(DEVICE, 2).encode())
    first = send(device, batch(sale(1), bad, sale(3), acked_upto=0), b"lost")
    assert (first["upto_seq"], named(first)) == (3, [(2, sale_id_of(DEVICE, 2), "invalid")])

    # The device never saw that ack: it applied nothing and says so with its next batch.
    ack = send(device, batch(sale(4), sale(5), acked_upto=0), b"next")
    assert ack["upto_seq"] == 5
    assert named(ack) == [(2, sale_id_of(DEVICE, 2), "invalid")]


def test_an_empty_batch_is_answered_with_the_progress(
    serving_hub: HubServer, hub_db: Database, device: DeviceClient
) -> None:
    server, db = serving_hub, hub_db
    assert send(device, batch(), b"empty-first") == {"v": 1, "upto_seq": 0, "rejected": []}
    send(device, batch(sale(1), sale(2)), b"two")
    assert send(device, batch(acked_upto=2), b"empty")["upto_seq"] == 2
    assert progress(db) == 2 and server.stats.malformed == 0


def test_seq_starts_at_1_and_a_batch_with_seq_0_is_malformed(
    serving_hub: HubServer, hub_db: Database, device: DeviceClient
) -> None:
    server, db = serving_hub, hub_db
    zero = (0, "sale-0", document(1, sale_id="sale-0"))
    device.publish(UP, batch(zero, sale(1)), correlation=b"zero")
    # Acks go out in order: had the bad batch been answered, its ack would come first.
    assert send(device, batch(sale(1)), b"good")["upto_seq"] == 1
    assert server.stats.malformed == 1
    assert stored_seqs(db) == [1] and kept(db) == []
