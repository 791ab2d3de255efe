"""Catalog import from a store's CSV export: validate every row, then write all or nothing."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from appliance.core.bagging import MAX_BAG_GRAMS, MAX_BAG_TOLERANCE
from appliance.core.barcode import normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.errors import BarcodeError, CatalogImportError
from appliance.settings import StoreSettings
from appliance.store.catalog import SqliteCatalog

log = logging.getLogger(__name__)

REQUIRED = ("sku", "name", "price", "tax_class")
OPTIONAL = (
    "category",
    "age_restriction",
    "stock_tracked",
    "sold_by",
    "barcodes",
    "stock",
    "bag_grams",
    "bag_tolerance",
)
TRANSLATION_PREFIX = "name:"  # a column "name:de" holds the German name
_TRUE = {"1", "true", "yes", "y", "x"}
_FALSE = {"", "0", "false", "no", "n"}


class BadRowsError(CatalogImportError):
    """Rows failed validation, so nothing was imported."""

    def __init__(self, message: str, errors: list[RowError]) -> None:
        super().__init__(message)
        self.errors = errors


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one line of the file was refused."""

    line: int
    sku: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" ({self.sku})" if self.sku else "")
        return f"{where}: {self.reason}"


@dataclass(slots=True)
class ImportReport:
    """What an import read, wrote and refused."""

    rows: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Row:
    product: Product
    stock: int | None


def import_catalog_csv(
    catalog: SqliteCatalog,
    path: Path,
    store: StoreSettings,
    *,
    skip_bad_rows: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate the whole file, then write it in one transaction; bad rows abort unless skipped."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            report, rows = read_catalog_csv(handle, store)
    except (OSError, UnicodeDecodeError) as err:
        raise CatalogImportError(f"{path}: cannot read: {err}") from err
    except CatalogImportError as err:  # a bad header: say which file
        raise CatalogImportError(f"{path}: {err}") from err
    if report.errors and not skip_bad_rows:
        raise BadRowsError(
            f"{path}: {len(report.errors)} bad row(s); nothing was imported", report.errors
        )
    report.imported = catalog.upsert(((r.product, r.stock) for r in rows), progress=progress)
    log.info("catalog import: %d products from %s", report.imported, path)
    return report


def read_catalog_csv(handle: TextIO, store: StoreSettings) -> tuple[ImportReport, list[_Row]]:
    """Parse and validate every row; returns the report and the good rows."""
    sample = handle.read(4096)
    handle.seek(0)
    reader = csv.reader(handle, dialect=_dialect(sample))
    columns = [c.strip() for c in next(reader, [])]
    if missing := [c for c in REQUIRED if c not in columns]:
        raise CatalogImportError(
            f"missing column(s): {', '.join(missing)} (the header needs {', '.join(REQUIRED)})"
        )
    known = set(REQUIRED) | set(OPTIONAL)
    if unknown := [c for c in columns if c not in known and not c.startswith(TRANSLATION_PREFIX)]:
        raise CatalogImportError(f"unknown column(s): {', '.join(unknown)}")
    parser = _RowParser(columns, store)
    report = ImportReport()
    rows: list[_Row] = []
    seen_skus: dict[str, int] = {}
    seen_barcodes: dict[str, int] = {}
    for record in reader:
        if not any(record):
            continue  # blank lines, which spreadsheets leave at the end
        report.rows += 1
        line = reader.line_num
        sku = parser.sku(record)
        try:
            row = parser.parse(record)
            if sku in seen_skus:
                raise ValueError(f"SKU repeats line {seen_skus[sku]}")
            for key in row.product.barcodes:
                if key in seen_barcodes:
                    raise ValueError(f"barcode {key.lstrip('0')} repeats line {seen_barcodes[key]}")
        except (ValueError, BarcodeError) as err:
            report.errors.append(RowError(line, sku, str(err)))
            continue
        seen_skus[sku] = line
        seen_barcodes.update(dict.fromkeys(row.product.barcodes, line))
        rows.append(row)
    return report, rows


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    """Comma or semicolon separated (spreadsheets in many locales export with ';')."""
    try:
        return csv.Sniffer().sniff(sample.partition("\n")[0] or ",", delimiters=",;\t")
    except csv.Error:
        return csv.excel


class _RowParser:
    """Turns one CSV record into a product; column positions are found once per file."""

    def __init__(self, columns: list[str], store: StoreSettings) -> None:
        self._width = len(columns)
        # An absent column reads position `width`: the padding cell, always "".
        at = {name: n for n, name in enumerate(columns)}
        self._sku, self._name, self._price, self._tax_class, self._category, self._age = (
            at.get(c, self._width)
            for c in ("sku", "name", "price", "tax_class", "category", "age_restriction")
        )
        self._tracked, self._sold_by, self._barcodes, self._stock = (
            at.get(c, self._width) for c in ("stock_tracked", "sold_by", "barcodes", "stock")
        )
        self._bag_grams, self._bag_tolerance = (
            at.get(c, self._width) for c in ("bag_grams", "bag_tolerance")
        )
        self._translations = sorted(
            (name.removeprefix(TRANSLATION_PREFIX), n)
            for n, name in enumerate(columns)
            if name.startswith(TRANSLATION_PREFIX)
        )
        self._store = store

    def sku(self, record: list[str]) -> str:
        """The record's SKU, for error messages."""
        return record[self._sku].strip() if self._sku < len(record) else ""

    def parse(self, record: list[str]) -> _Row:
        """Validate a record; ValueError or BarcodeError says what is wrong with it."""
        if len(record) > self._width:
            raise ValueError("more cells than the header has columns")
        cells = [cell.strip() for cell in record]
        cells += [""] * (self._width + 1 - len(cells))
        store = self._store
        sku = cells[self._sku]
        if not sku:
            raise ValueError("sku is empty")
        name = cells[self._name]
        if not name:
            raise ValueError("name is empty")
        price = _price(cells[self._price], store.currency)
        tax_class = cells[self._tax_class]
        if tax_class not in store.tax_classes:
            known = ", ".join(sorted(store.tax_classes))
            raise ValueError(f"tax class {tax_class!r} is not one of: {known}")
        sold_by = cells[self._sold_by] or "each"
        if sold_by not in ("each", "kg"):
            raise ValueError(f"sold_by must be 'each' or 'kg', not {sold_by!r}")
        codes = cells[self._barcodes].replace(";", " ").split()
        bag_grams = _whole(cells[self._bag_grams], "bag_grams", 1, MAX_BAG_GRAMS)
        if bag_grams is not None and sold_by == "kg":
            # Its line's own weight is what the bag should gain.
            raise ValueError("bag_grams must be empty for a product sold by weight")
        product = Product(
            sku=sku,
            name=name,
            price=price,
            tax_class=tax_class,
            category=cells[self._category],
            age_restriction=_whole(cells[self._age], "age_restriction", 0, 99) or 0,
            stock_tracked=_flag(cells[self._tracked], default=True),
            sold_by=sold_by,  # type: ignore[arg-type]  # checked just above
            names=tuple((locale, cells[n]) for locale, n in self._translations if cells[n]),
            barcodes=tuple(normalize_gtin(code) for code in codes),
            bag_grams=bag_grams,
            bag_tolerance=_whole(cells[self._bag_tolerance], "bag_tolerance", 0, MAX_BAG_TOLERANCE),
        )
        return _Row(product, _whole(cells[self._stock], "stock", -(10**9), 10**9))


def _price(raw: str, currency: str) -> Money:
    if not raw:
        raise ValueError("price is empty")
    if "," in raw and "." not in raw:  # a decimal comma, as many locales write it
        raw = raw.replace(",", ".")
    try:
        price = Money.parse(raw, currency)
    except ValueError as err:
        raise ValueError(f"price {err}") from None
    if price.minor < 0:
        raise ValueError(f"price {raw!r} is negative")
    return price


def _whole(raw: str, column: str, low: int, high: int) -> int | None:
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{column} {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{column} {value} is out of range {low}..{high}")
    return value


def _flag(raw: str, *, default: bool) -> bool:
    lowered = raw.lower()
    if not raw:
        return default
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"stock_tracked {raw!r} is not yes/no")


def products_to_csv(products: Iterator[tuple[Product, int | None]]) -> str:
    """A CSV in the import format (used to write demo and benchmark catalogs)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*REQUIRED, *OPTIONAL])
    for p, stock in products:
        writer.writerow(
            [
                p.sku,
                p.name,
                str(p.price.decimal),
                p.tax_class,
                p.category,
                p.age_restriction or "",
                "yes" if p.stock_tracked else "no",
                p.sold_by,
                " ".join(p.barcodes),
                "" if stock is None else stock,
                "" if p.bag_grams is None else p.bag_grams,
                "" if p.bag_tolerance is None else p.bag_tolerance,
            ]
        )
    return out.getvalue()
