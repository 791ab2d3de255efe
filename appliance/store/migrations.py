"""Versioned schema migrations, tracked in PRAGMA user_version."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from peewee import SqliteDatabase

from appliance.errors import SchemaTooNewError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema, applied in one transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "catalog, documents, stock movements and the sync outbox",
        (
            """CREATE TABLE product (
                sku TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                names TEXT NOT NULL DEFAULT '{}',
                price_minor INTEGER NOT NULL,
                currency TEXT NOT NULL,
                tax_class TEXT NOT NULL,
                category TEXT NOT NULL DEFAULT '',
                age_restriction INTEGER NOT NULL DEFAULT 0,
                stock_tracked INTEGER NOT NULL DEFAULT 1,
                sold_by TEXT NOT NULL DEFAULT 'each',
                stock_qty INTEGER NOT NULL DEFAULT 0,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE barcode (
                key TEXT PRIMARY KEY,
                sku TEXT NOT NULL REFERENCES product(sku) ON DELETE CASCADE
            ) WITHOUT ROWID""",
            "CREATE INDEX barcode_sku ON barcode(sku)",
            """CREATE TABLE document (
                id TEXT PRIMARY KEY,
                sequence INTEGER NOT NULL UNIQUE,
                receipt_number TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL CHECK (kind IN ('sale', 'refund', 'void')),
                created_at TEXT NOT NULL,
                currency TEXT NOT NULL,
                total INTEGER NOT NULL,
                tax_total INTEGER NOT NULL,
                line_count INTEGER NOT NULL,
                refers_to TEXT REFERENCES document(id),
                staff TEXT NOT NULL DEFAULT '',
                body BLOB NOT NULL
            )""",
            "CREATE INDEX document_created_at ON document(created_at)",
            "CREATE INDEX document_refers_to ON document(refers_to)",
            """CREATE TABLE document_line (
                document_id TEXT NOT NULL REFERENCES document(id),
                line_no INTEGER NOT NULL,
                sku TEXT NOT NULL,
                quantity INTEGER NOT NULL,
                amount INTEGER NOT NULL,
                tax_class TEXT NOT NULL,
                tax_rate INTEGER NOT NULL,
                refers_to_line INTEGER,
                PRIMARY KEY (document_id, line_no)
            ) WITHOUT ROWID""",
            """CREATE TABLE stock_movement (
                id INTEGER PRIMARY KEY,
                sku TEXT NOT NULL,
                delta INTEGER NOT NULL,
                reason TEXT NOT NULL,
                document_id TEXT REFERENCES document(id),
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX stock_movement_document ON stock_movement(document_id)",
            """CREATE TABLE outbox (
                sequence INTEGER PRIMARY KEY,
                document_id TEXT NOT NULL UNIQUE REFERENCES document(id),
                payload BLOB NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE meta (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID""",
        ),
    ),
    Migration(
        2,
        "cash drawer openings with their reason",
        (
            """CREATE TABLE drawer_opening (
                id INTEGER PRIMARY KEY,
                device TEXT NOT NULL,
                reason TEXT NOT NULL CHECK (reason IN ('sale', 'no_sale', 'remote', 'selftest')),
                staff TEXT NOT NULL DEFAULT '',
                reference TEXT NOT NULL DEFAULT '',
                opened_at TEXT NOT NULL
            )""",
            "CREATE INDEX drawer_opening_opened_at ON drawer_opening(opened_at)",
        ),
    ),
    Migration(
        3,
        "staff members, parked carts and stored-value card accounts",
        (
            # A PIN is kept only as a salted scrypt hash and a badge only as a hash of its
            # UID; a removed member stays (documents name them) with `active` = 0.
            """CREATE TABLE staff (
                staff_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('cashier', 'supervisor')),
                pin_hash TEXT NOT NULL,
                badge_key TEXT UNIQUE,
                active INTEGER NOT NULL DEFAULT 1,
                created_utc TEXT NOT NULL
            )""",
            """CREATE TABLE parked_cart (
                park_id TEXT PRIMARY KEY,
                label TEXT NOT NULL DEFAULT '',
                staff_id TEXT NOT NULL DEFAULT '',
                parked_utc TEXT NOT NULL,
                currency TEXT NOT NULL,
                lines INTEGER NOT NULL,
                total INTEGER NOT NULL,
                body BLOB NOT NULL
            )""",
            "CREATE INDEX parked_cart_parked_utc ON parked_cart(parked_utc)",
            # The CHECK is the last guard against a card going below zero.
            """CREATE TABLE stored_value_account (
                uid_key TEXT PRIMARY KEY,
                balance INTEGER NOT NULL CHECK (balance >= 0),
                currency TEXT NOT NULL
            )""",
            """CREATE TABLE stored_value_entry (
                reference TEXT PRIMARY KEY,
                uid_key TEXT NOT NULL REFERENCES stored_value_account(uid_key),
                amount INTEGER NOT NULL,
                balance_after INTEGER NOT NULL,
                created_utc TEXT NOT NULL,
                undone INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX stored_value_entry_uid_key ON stored_value_entry(uid_key)",
        ),
    ),
    Migration(
        4,
        "seen fleet command ids and staged catalog snapshot chunks",
        (
            # Appliances before this version created both tables at run time, so a database
            # they wrote may hold them already, with these very columns: IF NOT EXISTS keeps
            # its rows (a seen command id must stay seen) and lets the migration run.
            """CREATE TABLE IF NOT EXISTS command_seen (
                id TEXT PRIMARY KEY,
                expires_at TEXT NOT NULL,
                seen_at TEXT NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE IF NOT EXISTS catalog_snapshot_chunk (
                version INTEGER NOT NULL,
                chunk INTEGER NOT NULL,
                chunks INTEGER NOT NULL,
                body BLOB NOT NULL,
                received_at TEXT NOT NULL,
                PRIMARY KEY (version, chunk)
            )""",
        ),
    ),
    Migration(
        5,
        "the payment-attempt journal",
        (
            # One row per card attempt, written before the terminal hears of it, so a charge
            # the appliance did not live to see answered is found at the next start. `cart`
            # is the cart it paid for (JSON), so a sale can still be made of it after a restart.
            """CREATE TABLE payment_attempt (
                reference TEXT PRIMARY KEY,
                amount INTEGER NOT NULL CHECK (amount > 0),
                currency TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('sent', 'approved', 'declined',
                    'cancelled', 'refused', 'unknown', 'paid', 'not_paid')),
                terminal_reference TEXT NOT NULL DEFAULT '',
                card_mask TEXT NOT NULL DEFAULT '',
                message TEXT NOT NULL DEFAULT '',
                cart BLOB,
                sale_id TEXT REFERENCES document(id),
                started_utc TEXT NOT NULL,
                updated_utc TEXT NOT NULL
            )""",
            "CREATE INDEX payment_attempt_state ON payment_attempt(state)",
            "CREATE INDEX payment_attempt_terminal ON payment_attempt(terminal_reference)",
        ),
    ),
    Migration(
        6,
        "the payment journal's five states, refunds and the PCI-safe card fields",
        (
            # pending: committed before the terminal hears of it, and kept until the
            # terminal says (or recovery finds) what happened; approved or declined: what the
            # terminal answered, committed before its answer is acknowledged; settled: a
            # document carries it (in the document's own transaction); reversed: undone at
            # the terminal. Only the PCI-safe fields of the terminal's answer are kept.
            """CREATE TABLE payment_journal (
                reference TEXT PRIMARY KEY,
                kind TEXT NOT NULL DEFAULT 'payment'
                    CHECK (kind IN ('payment', 'refund', 'reversal')),
                amount INTEGER NOT NULL CHECK (amount > 0),
                currency TEXT NOT NULL,
                state TEXT NOT NULL
                    CHECK (state IN ('pending', 'approved', 'declined', 'settled', 'reversed')),
                original_reference TEXT NOT NULL DEFAULT '',
                terminal_reference TEXT NOT NULL DEFAULT '',
                card_mask TEXT NOT NULL DEFAULT '',
                card_brand TEXT NOT NULL DEFAULT '',
                auth_code TEXT NOT NULL DEFAULT '',
                terminal_id TEXT NOT NULL DEFAULT '',
                trace_number TEXT NOT NULL DEFAULT '',
                receipt_number TEXT NOT NULL DEFAULT '',
                result_code INTEGER,
                offline INTEGER NOT NULL DEFAULT 0,
                submitted_utc TEXT,
                message TEXT NOT NULL DEFAULT '',
                cart BLOB,
                sale_id TEXT REFERENCES document(id),
                started_utc TEXT NOT NULL,
                updated_utc TEXT NOT NULL
            )""",
            # Every attempt keeps its meaning: with the terminal or in doubt is pending, paid
            # is settled, and every way of not charging (declined, cancelled, refused, settled
            # not paid by staff) is declined.
            """INSERT INTO payment_journal (reference, amount, currency, state,
                terminal_reference, card_mask, message, cart, sale_id, started_utc, updated_utc)
            SELECT reference, amount, currency,
                CASE state WHEN 'sent' THEN 'pending' WHEN 'unknown' THEN 'pending'
                    WHEN 'approved' THEN 'approved' WHEN 'paid' THEN 'settled'
                    ELSE 'declined' END,
                terminal_reference, card_mask, message, cart, sale_id, started_utc, updated_utc
            FROM payment_attempt""",
            "DROP TABLE payment_attempt",
            # Partial indexes: the journal keeps every attempt for good, yet what the till
            # asks for is few rows (the open ones, the offline ones not yet submitted), and
            # an answer that moves pending to approved touches none of them.
            """CREATE INDEX payment_journal_open ON payment_journal(started_utc, reference)
                WHERE state IN ('pending', 'approved')""",
            """CREATE INDEX payment_journal_receipt ON payment_journal(terminal_id, receipt_number)
                WHERE receipt_number <> ''""",
            """CREATE INDEX payment_journal_offline ON payment_journal(started_utc)
                WHERE offline = 1 AND submitted_utc IS NULL""",
        ),
    ),
    Migration(
        7,
        "the fiscal journal: every fiscal event in a hash chain",
        (
            # One row per fiscal event, written in the event's own transaction. `number` is
            # gapless per device; `hash` covers the number, kind, moment, the body's digest and
            # the previous hash, so an edited, deleted or re-ordered row breaks the chain.
            """CREATE TABLE journal (
                number INTEGER PRIMARY KEY CHECK (number > 0),
                kind TEXT NOT NULL,
                at TEXT NOT NULL,
                body BLOB NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        8,
        "shifts, cash movements and X/Z reports",
        (
            # A shift holds the documents numbered after `after_sequence` up to its close's
            # `upto_sequence` (both set inside the writing transaction), so every document
            # lands in exactly one shift's Z whatever the clock did. Counts are JSON
            # {denomination: pieces}; `counted` stays NULL when nobody counted (a kiosk
            # closed by its schedule).
            """CREATE TABLE shift (
                id TEXT PRIMARY KEY,
                number INTEGER NOT NULL CHECK (number > 0),
                till TEXT NOT NULL,
                staff TEXT NOT NULL,
                currency TEXT NOT NULL,
                opened_at TEXT NOT NULL,
                float_count TEXT NOT NULL,
                float_total INTEGER NOT NULL CHECK (float_total >= 0),
                after_sequence INTEGER NOT NULL,
                closed_at TEXT,
                upto_sequence INTEGER,
                counted TEXT,
                counted_total INTEGER,
                expected INTEGER,
                difference INTEGER,
                closed_by TEXT,
                signed_off_by TEXT,
                UNIQUE (till, number)
            )""",
            # At most one open shift per till, whatever a bug or a second process tries.
            "CREATE UNIQUE INDEX shift_one_open ON shift(till) WHERE closed_at IS NULL",
            """CREATE TABLE cash_movement (
                id TEXT PRIMARY KEY,
                shift_id TEXT NOT NULL REFERENCES shift(id),
                kind TEXT NOT NULL CHECK (kind IN ('in', 'out')),
                amount INTEGER NOT NULL CHECK (amount > 0),
                reason TEXT NOT NULL,
                staff TEXT NOT NULL,
                at TEXT NOT NULL
            )""",
            "CREATE INDEX cash_movement_shift ON cash_movement(shift_id)",
            # X and Z reports as made (`body` is TillReport.to_dict() as JSON). A Z's number
            # is computed inside the closing transaction; UNIQUE makes a repeat impossible.
            """CREATE TABLE till_report (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('x', 'z')),
                number INTEGER NOT NULL CHECK (number > 0),
                z_number INTEGER UNIQUE,
                shift_id TEXT NOT NULL REFERENCES shift(id),
                staff TEXT NOT NULL,
                made_at TEXT NOT NULL,
                body BLOB NOT NULL,
                CHECK ((kind = 'z') = (z_number IS NOT NULL)),
                CHECK (z_number IS NULL OR z_number = number),
                UNIQUE (shift_id, kind, number)
            )""",
        ),
    ),
    Migration(
        9,
        "the durable print queue and drawer openings by hand",
        (
            # One row per receipt or report on its way to paper, kept from the moment it is
            # queued: it survives a restart, and `id` stays the job's through every retry.
            # `body` is the Receipt as JSON, so it prints (or reprints) without the sale.
            """CREATE TABLE print_job (
                id INTEGER PRIMARY KEY,
                printer TEXT NOT NULL,
                receipt_number TEXT NOT NULL,
                sale_id TEXT NOT NULL DEFAULT '',
                copy INTEGER NOT NULL DEFAULT 0,
                state TEXT NOT NULL CHECK (state IN ('queued', 'printing', 'printed',
                    'uncertain', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                reason TEXT NOT NULL DEFAULT '',
                body BLOB NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE INDEX print_job_open ON print_job(printer, id)
                WHERE state IN ('queued', 'printing')""",
            # SQLite cannot change a CHECK in place: the table is rebuilt with by_hand allowed.
            """CREATE TABLE drawer_opening_v9 (
                id INTEGER PRIMARY KEY,
                device TEXT NOT NULL,
                reason TEXT NOT NULL CHECK (reason IN ('sale', 'no_sale', 'remote', 'selftest',
                    'by_hand')),
                staff TEXT NOT NULL DEFAULT '',
                reference TEXT NOT NULL DEFAULT '',
                opened_at TEXT NOT NULL
            )""",
            """INSERT INTO drawer_opening_v9 (id, device, reason, staff, reference, opened_at)
            SELECT id, device, reason, staff, reference, opened_at FROM drawer_opening""",
            "DROP TABLE drawer_opening",
            "ALTER TABLE drawer_opening_v9 RENAME TO drawer_opening",
            "CREATE INDEX drawer_opening_opened_at ON drawer_opening(opened_at)",
        ),
    ),
    Migration(
        10,
        "sales the hub rejected, held apart from the outbox",
        (
            # A sale the hub refused (a document it cannot read, or one in conflict with
            # what it holds) moves here from the outbox in the transaction that applies the
            # hub's acknowledgement: it stops blocking the stream and is never lost. `code`
            # and `reason` are the hub's words, for staff and the fleet admin.
            """CREATE TABLE sale_quarantine (
                seq INTEGER PRIMARY KEY,
                sale_id TEXT NOT NULL UNIQUE REFERENCES document(id),
                document BLOB NOT NULL,
                code TEXT NOT NULL,
                reason TEXT NOT NULL,
                quarantined_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        11,
        "product descriptions and pictures",
        (
            # NULL: never given (a local import); '': none. A picture is a file name in the
            # picture folder beside the database (store/thumbnails.py), never its bytes.
            "ALTER TABLE product ADD COLUMN description TEXT",
            "ALTER TABLE product ADD COLUMN thumbnail TEXT",
            # Only products with a picture: finding the pictures still in use reads these.
            "CREATE INDEX product_thumbnail ON product(thumbnail) WHERE thumbnail > ''",
        ),
    ),
    Migration(
        12,
        "the weight each product adds to the bagging area, and its tolerance",
        (
            # Grams; NULL: not known (any settled rise counts) / the store's default.
            "ALTER TABLE product ADD COLUMN bag_grams INTEGER",
            "ALTER TABLE product ADD COLUMN bag_tolerance INTEGER",
        ),
    ),
    Migration(
        13,
        "stored-value cards the hub holds: last known balances and debits until settled",
        (
            # Hashed UIDs, as the hub keeps them; a balance as the hub last answered it.
            """CREATE TABLE hub_card (
                card_key TEXT PRIMARY KEY,
                currency TEXT NOT NULL,
                balance INTEGER NOT NULL,
                points INTEGER NOT NULL DEFAULT 0,
                known_utc TEXT NOT NULL
            )""",
            # Every debit this device took: `asking` while the hub is asked online, `pending`
            # (offline) and `void` rows go to the hub until it answers them (then `settled` /
            # `voided`), `declined` when the hub said no; `day` is the local date the offline
            # limit counts by; `sale_checked` once a start found its sale (or voided it).
            """CREATE TABLE hub_card_debit (
                reference TEXT PRIMARY KEY,
                card_key TEXT NOT NULL,
                amount INTEGER NOT NULL,
                currency TEXT NOT NULL,
                offline INTEGER NOT NULL,
                state TEXT NOT NULL,
                day TEXT NOT NULL,
                balance INTEGER NOT NULL,
                points INTEGER NOT NULL DEFAULT 0,
                created_utc TEXT NOT NULL,
                sale_checked INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX hub_card_debit_card_day ON hub_card_debit(card_key, day)",
            "CREATE INDEX hub_card_debit_to_send ON hub_card_debit(state)"
            " WHERE state IN ('pending', 'void')",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def schema_version(db: SqliteDatabase) -> int:
    """The version the database is at (0 when empty)."""
    return int(db.execute_sql("PRAGMA user_version").fetchone()[0])


def check_not_newer(db: SqliteDatabase) -> int:
    """Refuse a database written by a newer appliance; returns its version."""
    found = schema_version(db)
    if found > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the database is at schema version {found} but this appliance knows up to "
            f"{SCHEMA_VERSION}: it was written by newer software. Install that version "
            "again (or newer) instead of downgrading; the data was not touched."
        )
    return found


def pending_migrations(db: SqliteDatabase) -> tuple[Migration, ...]:
    """Migrations not yet applied, in order."""
    current = check_not_newer(db)
    return tuple(m for m in MIGRATIONS if m.version > current)


def migrate(db: SqliteDatabase, backup_dir: Path | None = None) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns what ran."""
    todo = pending_migrations(db)
    if todo and backup_dir is not None and schema_version(db) > 0:
        _backup(db, backup_dir, schema_version(db))
    for migration in todo:
        with db.atomic("IMMEDIATE"):
            for statement in migration.statements:
                db.execute_sql(statement)
            # user_version cannot take a bound parameter; the value is our own integer.
            db.execute_sql(f"PRAGMA user_version = {int(migration.version)}")
        log.info("database migrated to version %d: %s", migration.version, migration.description)
    return list(todo)


def _backup(db: SqliteDatabase, backup_dir: Path, version: int) -> None:
    """Copy the database aside before changing its schema, so a bad upgrade can be undone."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    target = backup_dir / f"before-migration-from-v{version}.db"
    if target.exists():
        target.unlink()
    db.execute_sql("VACUUM INTO ?", (str(target),))
    log.info("database backed up to %s before migrating", target)
