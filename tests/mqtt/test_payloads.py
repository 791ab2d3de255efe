"""Every hub payload survives encode -> decode, and bad input is a DecodeError, never a crash."""

from __future__ import annotations

import contextlib
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.mqtt import payloads as p

PRODUCT = p.ProductPayload(
    sku="SKU-1",
    name="Oat milk 1 l",
    price=249,
    currency="EUR",
    tax_class="reduced",
    category="dairy",
    age_restriction=0,
    stock_tracked=True,
    sold_by="each",
    names={"de": "Hafermilch 1 l"},
    barcodes=["4006381333931"],
    stock=12,
)
DOCUMENT = b'{"id":"0190b1a2-0000-7000-8000-000000000001","lines":[{"sku":"SKU-1","qty":2}]}'
JOURNAL_ENTRY = p.JournalEntryPayload(
    number=7,
    kind="drawer",
    at="2030-01-15T12:00:00+00:00",
    body="eyJyZWFzb24iOiJub19zYWxlIn0=",  # {"reason":"no_sale"}
    prev_hash="a" * 64,
    hash="b" * 64,
)

# One fully populated example per payload; test_every_payload_has_an_example keeps it complete.
EXAMPLES: dict[type[p.Payload], p.Payload] = {
    p.HubState: p.HubState(online=True, hub_id="hub-eu-1"),
    p.DeviceStatus: p.DeviceStatus(device="kiosk-a", online=True, bd_seq=7, firmware="1.4.0"),
    p.SaleEnvelope: p.SaleEnvelope(seq=41, sale_id="0190b1a2", document=msgspec.Raw(DOCUMENT)),
    p.SalesBatch: p.SalesBatch(
        device="kiosk-a",
        sales=[
            p.SaleEnvelope(seq=41, sale_id="0190b1a2", document=msgspec.Raw(DOCUMENT)),
            p.SaleEnvelope(seq=42, sale_id="0190b1a3", document=msgspec.Raw(b"{}")),
        ],
        acked_upto=40,
    ),
    p.SalesAck: p.SalesAck(
        upto_seq=42,
        rejected=[p.SaleRejection(seq=41, sale_id="0190b1a2", code="invalid", reason="no lines")],
    ),
    p.SaleRejection: p.SaleRejection(
        seq=40, sale_id="0190b1a1", code="conflict", reason="seq 40 holds sale 0190b1a0"
    ),
    p.JournalEntryPayload: JOURNAL_ENTRY,
    p.JournalBatch: p.JournalBatch(device="kiosk-a", entries=[JOURNAL_ENTRY]),
    p.JournalAck: p.JournalAck(upto_number=7),
    p.Telemetry: p.Telemetry(
        device="kiosk-a",
        at="2030-01-15T12:00:00Z",
        firmware="1.4.0",
        uptime_s=3600.5,
        outbox_depth=3,
        catalog_version=17,
        disk_free_bytes=12_000_000_000,
        cpu_temp_c=51.2,
        malformed_messages=1,
        devices=[
            p.DeviceHealthReport(device="printer", kind="escpos", state="ok"),
            p.DeviceHealthReport(device="nfc", kind="nfcpy", state="offline", reason="no reader"),
        ],
        offline_cards=p.OfflineCardsReport(
            count=2,
            amount=4_500,
            currency="EUR",
            oldest_age_s=10_800.0,
            max_per_payment=5_000,
            max_total=25_000,
            max_age_s=86_400.0,
        ),
        journal=p.JournalReport(
            head=9,
            acked_upto=7,
            checked_at="2030-01-15T11:00:00+00:00",
            broken_at=4,
            problem="its content does not match its hash",
        ),
        quarantined_sales=1,
        catalog_store="berlin-1",
    ),
    p.ProductPayload: PRODUCT,
    p.CatalogDelta: p.CatalogDelta(
        store="berlin-1", from_version=16, to_version=17, upserts=[PRODUCT], deletes=["SKU-OLD"]
    ),
    p.SnapshotChunk: p.SnapshotChunk(
        store="berlin-1", version=17, chunk=2, chunks=5, products=[PRODUCT], rebase=True
    ),
    p.CatalogStatus: p.CatalogStatus(store="berlin-1", version=17, state="current"),
    p.CatalogRequest: p.CatalogRequest(
        have_version=12, have_store="berlin-1", resume_version=17, next_chunk=3, max_packet=262_144
    ),
    p.Command: p.Command(
        id="cmd-1",
        device="kiosk-a",
        name="collect_logs",
        args={"lines": 500},
        issued_at="2030-01-15T12:00:00Z",
        expires_at="2030-01-15T12:05:00Z",
        signature="c2lnbmF0dXJl",
    ),
    p.CommandUpdate: p.CommandUpdate(id="cmd-1", state="REJECTED", reason="a sale is open"),
    p.DesiredConfig: p.DesiredConfig(version=3, config={"device": {"receipt_prefix": "K"}}),
    p.ReportedConfig: p.ReportedConfig(
        version=2, rejected_version=3, errors=["device.receipt_prefix: bad"]
    ),
    p.LogLines: p.LogLines(
        device="kiosk-a", command_id="cmd-2", source="journal", lines=["ready", "sale K-1"]
    ),
    p.UpdateReport: p.UpdateReport(
        device="kiosk-a",
        job="cmd-3",
        version="2026.12.2",
        state="downloading",
        running="2026.12.1",
        done=4_194_304,
        total=52_428_800,
    ),
    p.HelpCall: p.HelpCall(
        device="kiosk-a",
        id="0190f3c2-7a1b-7c3d-8e4f-0123456789ab",
        reason="payment_in_doubt",
        urgency="urgent",
        state="cleared",
        opened_at="2026-03-01T12:00:00+00:00",
        cleared_at="2026-03-01T12:03:10+00:00",
        by="Ana",
        detail="card payment K1-000042",
    ),
    p.HelpBoard: p.HelpBoard(
        store="berlin",
        at="2026-03-01T12:00:01.250000+00:00",
        calls=[
            p.HelpCall(
                device="kiosk-a",
                id="0190f3c2-7a1b-7c3d-8e4f-0123456789ac",
                reason="bagging",
                urgency="help",
                state="open",
                opened_at="2026-03-01T12:00:00+00:00",
                detail="unexpected item: 835 g on the scale, 135 g expected",
            )
        ],
        offline=["kiosk-b"],
    ),
    p.HelpApproval: p.HelpApproval(
        id="0190f3c2-7a1b-7c3d-8e4f-0123456789ad",
        device="till-1",
        kiosk="kiosk-a",
        call="0190f3c2-7a1b-7c3d-8e4f-0123456789ac",
        reason="bagging",
        action="clear",
        staff_id="S1",
        staff_name="Alex",
        role="cashier",
    ),
    p.HelpApprovalAnswer: p.HelpApprovalAnswer(
        id="0190f3c2-7a1b-7c3d-8e4f-0123456789ad",
        state="sent",
        command="0190f3c2-7a1b-7c3d-8e4f-0123456789ae",
        expires_at="2026-03-01T12:01:01+00:00",
    ),
    p.CardDebit: p.CardDebit(
        device="kiosk-1",
        reference="sv-0190f3c27a1b7c3d8e4f0123456789af",
        card="5d41402abc4b2a76b9719d911017c592" * 2,
        amount=750,
        currency="EUR",
        mode="offline",
        taken_at="2026-03-01T12:00:00+00:00",
    ),
    p.CardDebitAnswer: p.CardDebitAnswer(
        reference="sv-0190f3c27a1b7c3d8e4f0123456789af",
        outcome="applied",
        balance=-250,
        points=42,
        flag="overdraft",
    ),
}


def test_every_payload_has_an_example() -> None:
    assert set(EXAMPLES) == set(p.ALL_PAYLOADS)
    assert all(type(example) is kind for kind, example in EXAMPLES.items())


@pytest.mark.parametrize("kind", p.ALL_PAYLOADS, ids=lambda kind: kind.__name__)
def test_a_payload_round_trips_through_json(kind: type[p.Payload]) -> None:
    example = EXAMPLES[kind]
    data = p.encode(example)
    decoded = p.decode(data, kind)
    assert p.encode(decoded) == data
    assert json.loads(data)["v"] == p.SCHEMA_VERSION


@pytest.mark.parametrize("kind", p.ALL_PAYLOADS, ids=lambda kind: kind.__name__)
def test_a_payload_with_only_required_fields_decodes_with_defaults(kind: type[p.Payload]) -> None:
    full = json.loads(p.encode(EXAMPLES[kind]))
    required = {name: full[name] for name in _required_fields(kind)}
    decoded = p.decode(json.dumps(required).encode(), kind)
    assert decoded.v == p.SCHEMA_VERSION  # a missing `v` means version 1
    for name in required:
        assert json.loads(p.encode(decoded))[name] == full[name]


def test_a_sale_document_travels_as_the_exact_bytes_stored() -> None:
    batch = p.decode(p.encode(EXAMPLES[p.SalesBatch]), p.SalesBatch)
    assert bytes(batch.sales[0].document) == DOCUMENT


def test_unknown_fields_are_ignored_so_senders_can_add_optional_fields() -> None:
    data = b'{"v": 1, "upto_seq": 5, "added_in_a_later_minor": true}'
    assert p.decode(data, p.SalesAck) == p.SalesAck(upto_seq=5)


def test_a_newer_schema_version_is_refused() -> None:
    with pytest.raises(p.DecodeError, match="schema version 2 is newer"):
        p.decode(b'{"v": 2, "upto_seq": 5}', p.SalesAck)


@pytest.mark.parametrize(
    ("kind", "data", "why"),
    [
        (p.SalesAck, b"", "empty"),
        (p.SalesAck, b"{", "truncated"),
        (p.SalesAck, b"\xff\xfe", "not UTF-8 JSON"),
        (p.SalesAck, b"null", "not an object"),
        (p.SalesAck, b"[1, 2]", "an array"),
        (p.SalesAck, b'{"v": 1}', "missing upto_seq"),
        (p.SalesAck, b'{"upto_seq": "5"}', "a string for an int"),
        (p.SalesAck, b'{"upto_seq": 5.5}', "a float for an int"),
        (p.SalesAck, b'{"v": "1", "upto_seq": 5}', "a string version"),
        (p.HubState, b'{"online": "yes"}', "a string for a bool"),
        (p.CommandUpdate, b'{"id": "c", "state": "DONE"}', "a state outside the lifecycle"),
        (
            p.Command,
            b'{"id": "c", "device": "k", "name": "format_disk",'
            b' "issued_at": "t", "expires_at": "t"}',
            "a command nobody knows",
        ),
        (p.SalesBatch, b'{"device": "k", "sales": [{"seq": 1}]}', "a nested envelope short"),
        (p.CatalogDelta, b'{"kind": "snapshot", "from_version": 1, "to_version": 2}', "kind"),
        (
            p.ProductPayload,
            b'{"sku": "s", "name": "n", "price": 1, "currency": "EUR",'
            b' "tax_class": "t", "sold_by": "litre"}',
            "a unit outside each/kg",
        ),
    ],
)
def test_malformed_input_is_a_decode_error_naming_the_payload(
    kind: type[p.Payload], data: bytes, why: str
) -> None:
    with pytest.raises(p.DecodeError) as caught:
        p.decode(data, kind)
    assert str(caught.value).startswith(kind.__name__), why
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("kind", p.ALL_PAYLOADS, ids=lambda kind: kind.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=256))
def test_arbitrary_bytes_decode_or_raise_decode_error_only(
    kind: type[p.Payload], data: bytes
) -> None:
    with contextlib.suppress(p.DecodeError):
        p.decode(data, kind)


# Field names of every payload, so mutations mostly hit real fields rather than new ones.
FIELD_NAMES = sorted(
    {field.name for kind in p.ALL_PAYLOADS for field in msgspec.structs.fields(kind)}
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("kind", p.ALL_PAYLOADS, ids=lambda kind: kind.__name__)
@settings(max_examples=40, deadline=None)
@given(
    mutation=st.dictionaries(
        st.sampled_from(FIELD_NAMES) | st.text(max_size=8), JSON_VALUES, max_size=4
    )
)
def test_well_formed_json_of_the_wrong_shape_is_a_decode_error_at_worst(
    kind: type[p.Payload], mutation: dict[str, object]
) -> None:
    # Start from a valid payload and overwrite fields with arbitrary JSON values.
    document = json.loads(p.encode(EXAMPLES[kind])) | mutation
    try:
        decoded = p.decode(json.dumps(document).encode(), kind)
    except p.DecodeError:
        return
    assert p.decode(p.encode(decoded), kind) == decoded


@given(upto=st.integers(min_value=0, max_value=p.MAX_SAFE))
def test_any_sequence_number_round_trips(upto: int) -> None:
    assert p.decode(p.encode(p.SalesAck(upto_seq=upto)), p.SalesAck).upto_seq == upto


@given(upto=st.one_of(st.integers(max_value=-1), st.integers(min_value=p.MAX_SAFE + 1)))
def test_a_number_out_of_range_is_malformed_not_a_crash(upto: int) -> None:
    data = b'{"v":1,"upto_seq":%d}' % upto
    with pytest.raises(p.DecodeError, match="upto_seq"):
        p.decode(data, p.SalesAck)


@pytest.mark.parametrize(
    ("kind", "data", "where"),
    [
        (p.SalesBatch, b'{"device":"k","sales":[{"seq":9223372036854775808,'
         b'"sale_id":"s","document":{}}]}', "seq"),
        (p.ProductPayload, b'{"sku":"A","name":"A","price":1180591620717411303424,'
         b'"currency":"EUR","tax_class":"std"}', "price"),
        (p.Telemetry, b'{"device":"k","at":"","firmware":"","uptime_s":1e400,'
         b'"outbox_depth":0,"catalog_version":0,"disk_free_bytes":0}', "uptime_s"),
        (p.CatalogRequest, b'{"have_version":-1}', "have_version"),
    ],
)  # fmt: skip
def test_every_integer_and_float_is_bounded(kind: type[p.Payload], data: bytes, where: str) -> None:
    with pytest.raises(p.DecodeError, match=where):
        p.decode(data, kind)


def test_a_newer_version_of_a_nested_struct_is_refused() -> None:
    data = b'{"v":1,"device":"k","sales":[{"v":2,"seq":1,"sale_id":"s","document":{}}]}'
    with pytest.raises(p.DecodeError, match=r"sales\[0\]\.v"):
        p.decode(data, p.SalesBatch)


def test_every_integer_in_the_schemas_has_bounds() -> None:
    from hub.schemas import render

    def walk(node: object, path: str) -> list[str]:
        if isinstance(node, dict):
            found = []
            if node.get("type") == "integer" and ("minimum" not in node or "maximum" not in node):
                found.append(path)
            for key, value in node.items():
                found += walk(value, f"{path}/{key}")
            return found
        if isinstance(node, list):
            return [hit for i, item in enumerate(node) for hit in walk(item, f"{path}/{i}")]
        return []

    unbounded = [hit for name, text in render().items() for hit in walk(json.loads(text), name)]
    assert unbounded == []


@given(
    name=st.text(max_size=40),
    names=st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3),
    price=st.integers(min_value=0, max_value=p.MAX_SAFE),
)
def test_product_text_of_any_script_round_trips(
    name: str, names: dict[str, str], price: int
) -> None:
    product = msgspec.structs.replace(PRODUCT, name=name, names=names, price=price)
    assert p.decode(p.encode(product), p.ProductPayload) == product


def _required_fields(kind: type[p.Payload]) -> list[str]:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    return [field.encode_name for field in info.fields if field.required]
