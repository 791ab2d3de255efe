"""Peewee models mirroring the migrated schema; queries bind them to a database explicitly.

Models are never bound globally (no `Meta.database`), so two databases can be open in one
process (tests, the crash checker) without stepping on each other: use `query.bind(db)`.
The DDL lives in migrations.py; tests/store/test_models.py proves the two agree.
"""

from __future__ import annotations

from peewee import (
    BlobField,
    BooleanField,
    CompositeKey,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)


class _Table(Model):
    class Meta:
        legacy_table_names = False


class Product(_Table):
    """A catalog product with its current stock level."""

    sku = TextField(primary_key=True)
    name = TextField()
    names = TextField(default="{}")
    price_minor = IntegerField()
    currency = TextField()
    tax_class = TextField()
    category = TextField(default="")
    age_restriction = IntegerField(default=0)
    stock_tracked = BooleanField(default=True)
    sold_by = TextField(default="each")
    stock_qty = IntegerField(default=0)
    updated_at = TextField()
    description = TextField(null=True)  # NULL: never given; '': none
    thumbnail = TextField(null=True)  # the picture's file name (store/thumbnails.py); '' none
    bag_grams = IntegerField(null=True)  # what one item adds to the bagging area; NULL unknown
    bag_tolerance = IntegerField(null=True)  # grams either way; NULL: the store's default


class Barcode(_Table):
    """A normalised GTIN pointing at its product."""

    key = TextField(primary_key=True)
    sku = ForeignKeyField(Product, column_name="sku", field="sku", on_delete="CASCADE")


class Document(_Table):
    """A committed sale, refund or void; `body` is the whole immutable document as JSON."""

    id = TextField(primary_key=True)
    sequence = IntegerField(unique=True)
    receipt_number = TextField(unique=True)
    kind = TextField()
    created_at = TextField(index=True)
    currency = TextField()
    total = IntegerField()
    tax_total = IntegerField()
    line_count = IntegerField()
    refers_to = ForeignKeyField("self", column_name="refers_to", null=True, index=True)
    staff = TextField(default="")
    body = BlobField()


class DocumentLine(_Table):
    """One line of a document, for reports and refund bookkeeping."""

    document = ForeignKeyField(Document, column_name="document_id")
    line_no = IntegerField()
    sku = TextField()
    quantity = IntegerField()
    amount = IntegerField()
    tax_class = TextField()
    tax_rate = IntegerField()
    refers_to_line = IntegerField(null=True)

    class Meta:
        primary_key = CompositeKey("document", "line_no")


class StockMovement(_Table):
    """A change of stock and why."""

    id = IntegerField(primary_key=True)
    sku = TextField()
    delta = IntegerField()
    reason = TextField()
    document = ForeignKeyField(Document, column_name="document_id", null=True)
    created_at = TextField()


class Outbox(_Table):
    """A document waiting for the hub's acknowledgement, in device sequence order."""

    sequence = IntegerField(primary_key=True)
    document = ForeignKeyField(Document, column_name="document_id", unique=True)
    payload = BlobField()
    created_at = TextField()


class SaleQuarantineRow(_Table):
    """A sale the hub rejected, moved out of the outbox with the hub's code and reason."""

    seq = IntegerField(primary_key=True)
    sale = ForeignKeyField(Document, column_name="sale_id", unique=True)
    document = BlobField()
    code = TextField()
    reason = TextField()
    quarantined_at = TextField()

    class Meta:
        table_name = "sale_quarantine"


class DrawerOpeningRow(_Table):
    """A cash drawer opening and why (sale, no-sale by a named staff member, remote, by hand)."""

    id = IntegerField(primary_key=True)
    device = TextField()
    reason = TextField()
    staff = TextField(default="")
    reference = TextField(default="")
    opened_at = TextField(index=True)

    class Meta:
        table_name = "drawer_opening"


class StaffRow(_Table):
    """A staff member: the PIN only as a salted slow hash, the badge only as a hash of its UID."""

    staff_id = TextField(primary_key=True)
    name = TextField()
    role = TextField()
    pin_hash = TextField()
    badge_key = TextField(null=True, unique=True)
    active = BooleanField(default=True)
    created_utc = TextField()

    class Meta:
        table_name = "staff"


class ParkedCartRow(_Table):
    """A cart put aside to be resumed later; `body` is the whole cart as JSON."""

    park_id = TextField(primary_key=True)
    label = TextField(default="")
    staff_id = TextField(default="")
    parked_utc = TextField(index=True)
    currency = TextField()
    lines = IntegerField()
    total = IntegerField()
    body = BlobField()

    class Meta:
        table_name = "parked_cart"


class StoredValueAccountRow(_Table):
    """The balance of a stored-value card, keyed by a hash of its UID."""

    uid_key = TextField(primary_key=True)
    balance = IntegerField()
    currency = TextField()

    class Meta:
        table_name = "stored_value_account"


class StoredValueEntryRow(_Table):
    """One top-up (positive) or debit (negative) of a card, unique by its reference."""

    reference = TextField(primary_key=True)
    uid_key = ForeignKeyField(
        StoredValueAccountRow, column_name="uid_key", field="uid_key", index=True
    )
    amount = IntegerField()
    balance_after = IntegerField()
    created_utc = TextField()
    undone = BooleanField(default=False)

    class Meta:
        table_name = "stored_value_entry"


class HubCardRow(_Table):
    """A stored-value card the hub holds, as it last answered (store/card_debits.py)."""

    card_key = TextField(primary_key=True)
    currency = TextField()
    balance = IntegerField()
    points = IntegerField(default=0)
    known_utc = TextField()

    class Meta:
        table_name = "hub_card"


class HubCardDebitRow(_Table):
    """A debit of a hub-held card this device took, kept until the hub has settled it."""

    reference = TextField(primary_key=True)
    card_key = TextField()
    amount = IntegerField()
    currency = TextField()
    offline = BooleanField()
    state = TextField()  # asking, pending, void (to send), settled, voided, declined
    day = TextField()
    balance = IntegerField()
    points = IntegerField(default=0)
    created_utc = TextField()
    sale_checked = BooleanField(default=False)  # a start found its sale, or voided it

    class Meta:
        table_name = "hub_card_debit"
        indexes = ((("card_key", "day"), False),)


class PaymentJournalRow(_Table):
    """One card attempt of the payment journal (store/payment_attempts.py writes it)."""

    reference = TextField(primary_key=True)
    kind = TextField(default="payment")
    amount = IntegerField()
    currency = TextField()
    state = TextField()
    original_reference = TextField(default="")
    terminal_reference = TextField(default="")
    card_mask = TextField(default="")
    card_brand = TextField(default="")
    auth_code = TextField(default="")
    terminal_id = TextField(default="")
    trace_number = TextField(default="")
    receipt_number = TextField(default="")
    result_code = IntegerField(null=True)
    offline = IntegerField(default=0)
    submitted_utc = TextField(null=True)
    message = TextField(default="")
    cart = BlobField(null=True)
    sale_id = ForeignKeyField(Document, column_name="sale_id", field="id", null=True)
    started_utc = TextField()
    updated_utc = TextField()

    class Meta:
        table_name = "payment_journal"


class CommandSeenRow(_Table):
    """A fleet command id already accepted (store/command_log.py keeps them)."""

    id = TextField(primary_key=True)
    expires_at = TextField()
    seen_at = TextField()

    class Meta:
        table_name = "command_seen"


class SnapshotChunkRow(_Table):
    """One staged chunk of a catalog snapshot from the hub (store/catalog_versions.py)."""

    version = IntegerField()
    chunk = IntegerField()
    chunks = IntegerField()
    body = BlobField()
    received_at = TextField()

    class Meta:
        table_name = "catalog_snapshot_chunk"
        primary_key = CompositeKey("version", "chunk")


class JournalRow(_Table):
    """One entry of the fiscal journal's hash chain (store/journal.py writes it)."""

    number = IntegerField(primary_key=True)
    kind = TextField()
    at = TextField()
    body = BlobField()
    prev_hash = TextField()
    hash = TextField()

    class Meta:
        table_name = "journal"


class PrintJobRow(_Table):
    """A receipt or report on its way to paper (store/print_jobs.py); `body` is its JSON."""

    id = IntegerField(primary_key=True)
    printer = TextField()
    receipt_number = TextField()
    sale_id = TextField(default="")
    copy = BooleanField(default=False)
    state = TextField()
    attempts = IntegerField(default=0)
    reason = TextField(default="")
    body = BlobField()
    created_at = TextField()
    updated_at = TextField()

    class Meta:
        table_name = "print_job"


class ShiftRow(_Table):
    """A till's shift: its float and, once closed, the counted cash (store/shifts.py)."""

    id = TextField(primary_key=True)
    number = IntegerField()
    till = TextField()
    staff = TextField()
    currency = TextField()
    opened_at = TextField()
    float_count = TextField()
    float_total = IntegerField()
    after_sequence = IntegerField()
    closed_at = TextField(null=True)
    upto_sequence = IntegerField(null=True)
    counted = TextField(null=True)
    counted_total = IntegerField(null=True)
    expected = IntegerField(null=True)
    difference = IntegerField(null=True)
    closed_by = TextField(null=True)
    signed_off_by = TextField(null=True)

    class Meta:
        table_name = "shift"
        indexes = ((("till", "number"), True),)


class CashMovementRow(_Table):
    """Cash put into or taken out of the drawer during a shift."""

    id = TextField(primary_key=True)
    shift = ForeignKeyField(ShiftRow, column_name="shift_id", field="id", index=True)
    kind = TextField()
    amount = IntegerField()
    reason = TextField()
    staff = TextField()
    at = TextField()

    class Meta:
        table_name = "cash_movement"


class TillReportRow(_Table):
    """An X or Z report as made; a Z's number is unique (store/reports.py)."""

    id = IntegerField(primary_key=True)
    kind = TextField()
    number = IntegerField()
    z_number = IntegerField(null=True, unique=True)
    shift = ForeignKeyField(ShiftRow, column_name="shift_id", field="id")
    staff = TextField()
    made_at = TextField()
    body = BlobField()

    class Meta:
        table_name = "till_report"
        indexes = ((("shift", "kind", "number"), True),)


class Meta(_Table):
    """Small key/value facts about this database."""

    key = TextField(primary_key=True)
    value = TextField()


MODELS: tuple[type[Model], ...] = (
    Product,
    Barcode,
    Document,
    DocumentLine,
    StockMovement,
    Outbox,
    SaleQuarantineRow,
    DrawerOpeningRow,
    StaffRow,
    ParkedCartRow,
    StoredValueAccountRow,
    StoredValueEntryRow,
    HubCardRow,
    HubCardDebitRow,
    CommandSeenRow,
    SnapshotChunkRow,
    PaymentJournalRow,
    JournalRow,
    PrintJobRow,
    ShiftRow,
    CashMovementRow,
    TillReportRow,
    Meta,
)
