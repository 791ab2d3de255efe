"""The catalog the checkout scans against: held in memory, reloaded when it changes."""

from __future__ import annotations

import ctypes
import gc
import logging
import re
import sys
import threading
import time
import unicodedata
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import accumulate, islice, pairwise, repeat
from operator import attrgetter

import msgspec

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.store.catalog import SqliteCatalog
from appliance.store.thumbnails import pack_name, unpack_name

log = logging.getLogger(__name__)


# The search text holds one line per product: its name, translations and SKU split by
# _FIELD. Folded text never holds either character, so no match spans two products.
_LINE = "\n"
_FIELD = "\x1f"
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
_SPACES = re.compile(r"[^\S\n]+")  # whitespace runs other than the line break
_CONTROL = re.compile("[\x00-\x1f\x7f]+")  # nothing in a name may pose as a separator
# With the rarest word this common, checking each hit in Python costs more than one
# regular-expression pass over the whole text.
_HITS_WORTH_CHECKING = 5_000
_CHUNK = 4_096  # products encoded and folded at once while loading


def fold(text: str) -> str:
    """Text as search compares it: case and accents ignored ("Brötchen " -> "brotchen")."""
    return _fold_bulk(_CONTROL.sub(" ", text)).strip()


def _fold_bulk(text: str) -> str:
    """fold() of many lines at once, keeping the line breaks: C speed over the whole text."""
    if not text.isascii():
        # NFKD splits "ö" into "o" and a combining mark, which is then dropped.
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return _SPACES.sub(" ", text.casefold())


def _raw_line(product: Product) -> str:
    """A product's name, translations and SKU, unfolded, with no separator inside."""
    if product.names:
        parts: tuple[str, ...] = (product.name, *(name for _, name in product.names), product.sku)
    else:
        parts = (product.name, product.sku)
    if all(map(str.isprintable, parts)):
        return _FIELD.join(parts)
    return _FIELD.join([_CONTROL.sub(" ", part) for part in parts])


# What many products share: (currency, tax_class, category, age_restriction,
# stock_tracked, sold_by). A catalog has a few hundred of them, so a record keeps a number.
_Shape = tuple[str, str, str, int, bool, str]
_shape_of = attrgetter(
    "price.currency", "tax_class", "category", "age_restriction", "stock_tracked", "sold_by"
)


class _Record(msgspec.Struct, array_like=True, gc=False):
    """A product as held in memory: a MessagePack array of about 50 bytes."""

    sku: str
    name: str
    minor: int  # the price in minor units of the shape's currency
    shape: int
    barcodes: tuple[str, ...] = ()
    names: tuple[tuple[str, str], ...] = ()
    picture: bytes = b""  # the picture's file name packed in 33 bytes; never its pixels
    bag_grams: int | None = None  # the bagging-area check's expected grams
    bag_tolerance: int | None = None


_decode = msgspec.msgpack.Decoder(_Record).decode
_encode = msgspec.msgpack.Encoder().encode


def _fields(product: Product, shape: int) -> tuple[object, ...]:
    """The _Record of a product, as a tuple; trailing empty tuples are left to defaults."""
    sku, name, minor = product.sku, product.name, product.price.minor
    if product.bag_grams is not None or product.bag_tolerance is not None:
        picture = pack_name(product.thumbnail) if product.thumbnail else b""
        return (
            *(sku, name, minor, shape, product.barcodes, product.names, picture),
            *(product.bag_grams, product.bag_tolerance),
        )
    if product.thumbnail:
        picture = pack_name(product.thumbnail)
        return (sku, name, minor, shape, product.barcodes, product.names, picture)
    if product.names:
        return (sku, name, minor, shape, product.barcodes, product.names)
    if product.barcodes:
        return (sku, name, minor, shape, product.barcodes)
    return (sku, name, minor, shape)


# Products are built without their __init__: a frozen dataclass sets each field through
# object.__setattr__, which would cost every scan several microseconds. A class with the
# same slots has the same memory layout, so an instance of it is filled in with plain
# attribute stores and then becomes a Product by __class__ assignment (CPython refuses
# that with TypeError if the slots ever differ, e.g. after a field is added to Product).
class _OpenProduct:
    """Product's slots without its frozen __setattr__."""

    __slots__ = (
        "age_restriction",
        "bag_grams",
        "bag_tolerance",
        "barcodes",
        "category",
        "name",
        "names",
        "price",
        "sku",
        "sold_by",
        "stock_tracked",
        "tax_class",
        "thumbnail",
    )
    sku: str
    name: str
    price: Money
    tax_class: str
    category: str
    age_restriction: int
    stock_tracked: bool
    sold_by: str
    names: tuple[tuple[str, str], ...]
    barcodes: tuple[str, ...]
    thumbnail: str
    bag_grams: int | None
    bag_tolerance: int | None


class _OpenMoney:
    """Money's slots without its frozen __setattr__."""

    __slots__ = ("currency", "minor")
    minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class _Records:
    """Every product encoded back to back in one bytes object, found by its number."""

    blob: bytes
    bounds: array[int]  # record n is blob[bounds[n] : bounds[n + 1]]
    shapes: list[_Shape]

    def record(self, index: int) -> _Record:
        """Record `index`, decoded."""
        bounds = self.bounds
        return _decode(self.blob[bounds[index] : bounds[index + 1]])

    def product(self, index: int) -> Product:
        """Product `index`."""
        return self.build(self.record(index))

    def build(self, record: _Record) -> Product:
        """The Product a decoded record stands for."""
        currency, tax_class, category, age, tracked, sold_by = self.shapes[record.shape]
        price = _OpenMoney()
        price.minor = record.minor
        price.currency = currency
        price.__class__ = Money  # type: ignore[assignment]
        product = _OpenProduct()
        product.sku = record.sku
        product.name = record.name
        product.price = price  # type: ignore[assignment]
        product.tax_class = tax_class
        product.category = category
        product.age_restriction = age
        product.stock_tracked = tracked
        product.sold_by = sold_by
        product.names = record.names
        product.barcodes = record.barcodes
        product.thumbnail = unpack_name(record.picture) if record.picture else ""
        product.bag_grams = record.bag_grams
        product.bag_tolerance = record.bag_tolerance
        product.__class__ = Product  # type: ignore[assignment]
        return product  # type: ignore[return-value]


# A key index entry is 32 bits of the key's hash() above 32 bits of its record number.
_HASH_BITS = 32
_RECORD_BITS = 32
_RECORD_MASK = (1 << _RECORD_BITS) - 1
_HASH_SHIFT = sys.hash_info.width - _HASH_BITS  # keep the top bits of a 64-bit hash


def _entries(keys: Iterable[str], records: Iterable[int]) -> list[int]:
    """Index entries of keys, each in the record beside it."""
    return [hash(k) >> _HASH_SHIFT << _RECORD_BITS | r for k, r in zip(keys, records, strict=True)]


@dataclass(frozen=True, slots=True)
class _KeyIndex:
    """Keys (SKUs, barcodes) found by their hash: about 13 bytes a key, where a dict of
    strings costs about 150. Callers check the record they get: hashes can collide.

    The entries are sorted, so equal hashes sort by record and the last record given a
    key is found first. `first` maps the top bits of a hash to where its entries start,
    so a lookup bisects one or two entries rather than the whole array.
    """

    entries: array[int]
    first: array[int]  # first[b]: where the entries of bucket b start
    shift: int  # a hash's bucket is its top bits: hash >> shift, plus `offset`
    offset: int  # so that negative hashes have buckets from 0

    @classmethod
    def build(cls, entries: Iterable[int]) -> _KeyIndex:
        """The index of these entries."""
        ordered = array("q", sorted(entries))
        bits = max(len(ordered) - 1, 1).bit_length()  # about one key a bucket
        shift, offset = _HASH_BITS - bits, 1 << (bits - 1)
        sizes = Counter([(entry >> _RECORD_BITS >> shift) + offset for entry in ordered])
        first = array("I", accumulate(map(sizes.get, range(1 << bits), repeat(0)), initial=0))
        return cls(ordered, first, shift, offset)

    def records_of(self, key: str) -> list[int]:
        """The records whose key may be `key`, the last one first."""
        hashed = hash(key) >> _HASH_SHIFT
        bucket = (hashed >> self.shift) + self.offset
        entries, low, base = self.entries, self.first[bucket], hashed << _RECORD_BITS
        at = bisect_right(entries, base | _RECORD_MASK, low, self.first[bucket + 1])
        found = []
        while at > low and entries[at - 1] >= base:
            at -= 1
            found.append(entries[at] & _RECORD_MASK)
        return found

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True, slots=True)
class _SearchIndex:
    """Every product's folded name, translations and SKU in one string, in name order.

    One string searched with str.find (C speed) costs about 30 bytes a product; strings
    or word indexes per product would cost far more of the 150 MB the kiosk may use.
    """

    text: str  # one line per product, joined by _LINE
    starts: array[int]  # where each product's line starts in `text`
    order: array[int]  # the record of each line
    categories: dict[str, array[int]]  # non-empty category -> its records, by name

    @classmethod
    def build(cls, lines: list[str], live: Iterable[int], category_of: list[str]) -> _SearchIndex:
        """The index of the records `live`, whose folded lines and categories are given."""
        # Lines start with the folded name, and _FIELD sorts before any letter: sorting
        # the lines sorts by name (then translations and SKU), accents ignored.
        order = array("i", sorted(live, key=lines.__getitem__))
        starts = array("I", accumulate((len(lines[i]) + 1 for i in order[:-1]), initial=0))
        text = _LINE.join([lines[i] for i in order])
        categories: dict[str, array[int]] = {}
        for i in order:
            if category := category_of[i]:
                categories.setdefault(category, array("i")).append(i)
        return cls(text, starts, order, categories)

    def search(self, words: list[str], limit: int) -> list[int]:
        """Records whose line holds every word, in name order, at most `limit`."""
        counts = {word: self.text.count(word) for word in words}
        lead = min(words, key=counts.__getitem__)
        if counts[lead] > _HITS_WORTH_CHECKING and len(words) > 1:
            return self._search_by_pattern(words, limit)
        others = [w for w in words if w is not lead]
        text, starts = self.text, self.starts
        found: list[int] = []
        position = text.find(lead)
        while position >= 0 and len(found) < limit:
            index = bisect_right(starts, position) - 1
            end = text.find(_LINE, position)
            end = len(text) if end < 0 else end
            line = text[starts[index] : end]
            if all(word in line for word in others):
                found.append(self.order[index])
            position = text.find(lead, end + 1)
        return found

    def _search_by_pattern(self, words: list[str], limit: int) -> list[int]:
        lookaheads = "".join(f"(?=[^\n]*{re.escape(word)})" for word in words)
        found: list[int] = []
        for match in re.finditer(f"(?m)^{lookaheads}", self.text):
            found.append(self.order[bisect_right(self.starts, match.start()) - 1])
            if len(found) >= limit:
                break
        return found


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One version of the catalog: its records, key indexes and search index."""

    version: int
    size: int  # products (a SKU given twice counts once)
    records: _Records
    by_barcode: _KeyIndex
    by_sku: _KeyIndex
    index: _SearchIndex

    def barcode(self, key: str) -> Product | None:
        """The product carrying barcode `key`."""
        for index in self.by_barcode.records_of(key):
            record = self.records.record(index)
            if key in record.barcodes:
                return self.records.build(record)
        return None

    def sku(self, sku: str) -> Product | None:
        """The product with this SKU."""
        for index in self.by_sku.records_of(sku):
            record = self.records.record(index)
            if record.sku == sku:
                return self.records.build(record)
        return None

    def products(self, indexes: Iterable[int]) -> list[Product]:
        """The products of these records."""
        return list(map(self.records.product, indexes))


class _Numbering(dict[_Shape, int]):
    """Numbers shapes in the order they are first seen."""

    def __missing__(self, shape: _Shape) -> int:
        number = self[shape] = len(self)
        return number


class _Loader:
    """Builds a snapshot from products as they stream in, keeping none of them."""

    def __init__(self) -> None:
        self._blob = bytearray()
        self._bounds: array[int] = array("I", [0])
        self._shapes = _Numbering()
        self._categories: list[str] = []
        self._by_sku: array[int] = array("q")
        self._by_barcode: array[int] = array("q")
        self._lines: list[str] = []

    def add(self, products: Iterable[Product]) -> None:
        """Encode every product."""
        stream = iter(products)
        # A chunk at a time: the per-product work runs in comprehensions (fast), and few
        # products and little unfolded text are alive at once.
        while chunk := list(islice(stream, _CHUNK)):
            self._add_chunk(chunk)

    def _add_chunk(self, products: list[Product]) -> None:
        first = len(self._categories)
        shapes = map(self._shapes.__getitem__, map(_shape_of, products))
        encoded = list(map(_encode, map(_fields, products, shapes)))
        self._bounds.extend(islice(accumulate(map(len, encoded), initial=len(self._blob)), 1, None))
        self._blob += b"".join(encoded)
        self._categories += [p.category for p in products]
        self._by_sku.extend(
            _entries([p.sku for p in products], range(first, first + len(products)))
        )
        numbered = list(enumerate(products, first))
        self._by_barcode.extend(
            _entries(
                [k for _, p in numbered for k in p.barcodes],
                [i for i, p in numbered for _ in p.barcodes],
            )
        )
        # Folded a chunk at a time: the whole catalog at once would briefly need several
        # copies of its text (wide strings, NFKD), and a resident peak stays in the RSS.
        self._lines += _fold_bulk(_LINE.join(map(_raw_line, products))).split(_LINE)

    def snapshot(self, version: int) -> _Snapshot:
        """The snapshot of every product added."""
        records = _Records(bytes(self._blob), self._bounds, list(self._shapes))
        self._blob = bytearray()
        by_sku = _KeyIndex.build(self._by_sku)
        by_barcode = _KeyIndex.build(self._by_barcode)
        count = len(self._categories)
        replaced = _replaced(records, by_sku)
        live = [i for i in range(count) if i not in replaced] if replaced else range(count)
        index = _SearchIndex.build(self._lines, live, self._categories)
        return _Snapshot(version, len(live), records, by_barcode, by_sku, index)


def _replaced(records: _Records, by_sku: _KeyIndex) -> set[int]:
    """Records whose SKU a later record gives again (only the last one counts)."""
    hashes = [entry >> _RECORD_BITS for entry in by_sku.entries]
    shared = {a for a, b in pairwise(hashes) if a == b}  # rare: at most a few
    if not shared:
        return set()
    latest: dict[str, int] = {}
    replaced: set[int] = set()
    for entry in by_sku.entries:  # by record within a hash: a later record comes later
        if entry >> _RECORD_BITS in shared:
            index = entry & _RECORD_MASK
            sku = records.record(index).sku
            if sku in latest:
                replaced.add(latest[sku])
            latest[sku] = index
    return replaced


def _return_freed_memory() -> None:
    """Hand the memory a load freed back to the system, which would otherwise keep it."""
    # A full collection empties CPython's free lists: thousands of spare tuples left by
    # the load, each keeping a whole 1 MB arena resident (about 8 MB for 100,000 products).
    gc.collect()
    if _malloc_trim is not None:  # glibc keeps freed heap until told
        _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim(), or None elsewhere."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _find_malloc_trim() if sys.platform.startswith("linux") else None


class MemoryCatalog:
    """CatalogLookup from RAM (about 150 bytes a product), so a scan never waits on the disk.

    Products are kept encoded (about 50 bytes each, all in one bytes object) and built on
    lookup, so every call hands out new Product objects, equal to the stored ones (a
    picture is its file name, 33 bytes packed: the pixels stay on disk);
    barcodes and SKUs are found through sorted arrays of their hashes. A scan costs a
    bisect and a decode, a few microseconds. At most every `recheck_seconds` a lookup
    reads the catalog version (one indexed row); if another process (`appliance catalog
    import`) or this one changed the catalog, a worker thread loads the new catalog while
    scans go on against the old one, and the new one replaces it in one assignment.
    Lookups: main thread. search(), categories() and in_category() are thread-safe and
    meant for a worker thread (a search over 100,000 products takes tens of milliseconds);
    they read the snapshot the scans keep current and never touch the database once loaded.
    Every load reads the database on a thread of its own, whose connection is closed after.
    """

    def __init__(
        self,
        source: SqliteCatalog,
        *,
        recheck_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._recheck = recheck_seconds
        self._monotonic = monotonic
        self._snapshot: _Snapshot | None = None
        self._checked_at = 0.0
        self._loader: threading.Thread | None = None
        self._loading = threading.Lock()  # one load at a time when threads ask at once

    def by_barcode_key(self, key: str) -> Product | None:
        """The product carrying a normalised GTIN."""
        return self._current().barcode(key)

    def picture_path(self, name: str) -> str:
        """The file of the picture a product names (its `thumbnail`); "" for none. Any thread."""
        return self._source.picture_path(name)

    def by_sku(self, sku: str) -> Product | None:
        """The product with this SKU."""
        return self._current().sku(sku)

    def search(self, text: str, limit: int = 50) -> list[Product]:
        """Products whose name, a translation or SKU holds every word of `text`, by name.

        Case and accents are ignored ("cafe" finds "Café"); "" finds nothing.
        """
        words = fold(text).split()
        if not words or limit <= 0:
            return []
        snapshot = self._snapshot_for_any_thread()
        return snapshot.products(snapshot.index.search(words, limit))

    def categories(self) -> list[str]:
        """The categories products are in, sorted (case and accents ignored)."""
        categories = self._snapshot_for_any_thread().index.categories
        return sorted(categories, key=lambda name: (fold(name), name))

    def in_category(self, category: str, limit: int = 200) -> list[Product]:
        """Products of a category, by name, at most `limit`."""
        snapshot = self._snapshot_for_any_thread()
        found = snapshot.index.categories.get(category, array("i"))
        return snapshot.products(found[: max(limit, 0)])

    def __len__(self) -> int:
        return self._current().size

    def refresh(self) -> int:
        """Load the catalog now (at start, so the first scan is fast); returns its size."""
        snapshot = self._install(self._load_apart())
        self._checked_at = self._monotonic()
        return snapshot.size

    def _snapshot_for_any_thread(self) -> _Snapshot:
        """The current snapshot without the main thread's recheck (that stays with scans)."""
        snapshot = self._snapshot
        if snapshot is not None:
            return snapshot
        with self._loading:
            if self._snapshot is None:
                return self._install(self._load_apart())
            return self._snapshot

    def _current(self) -> _Snapshot:
        now = self._monotonic()
        snapshot = self._snapshot
        if snapshot is not None and now - self._checked_at < self._recheck:
            return snapshot
        self._checked_at = now
        if snapshot is None:
            snapshot = self._snapshot_for_any_thread()
        elif self._source.version() != snapshot.version:
            self._reload_in_background()
        return snapshot

    def wait_for_reload(self, timeout: float | None = None) -> None:
        """Block until a background reload (if any) has finished; for tests and shutdown."""
        if self._loader is not None:
            self._loader.join(timeout)

    def _reload_in_background(self) -> None:
        if self._loader is not None and self._loader.is_alive():
            return
        self._loader = threading.Thread(target=self._reload, name="catalog-reload", daemon=True)
        self._loader.start()

    def _reload(self) -> None:
        try:
            self._install(self._load_apart())
        except Exception:
            log.exception("catalog reload failed; scanning against the previous catalog")

    def _install(self, snapshot: _Snapshot) -> _Snapshot:
        """Make `snapshot` the current one."""
        self._snapshot = snapshot
        # A load allocates and frees far more than it keeps (rows, Products, folded
        # text), and the previous snapshot is garbage now: without this the process
        # would keep all of it. Costs tens of milliseconds, once per catalog version.
        _return_freed_memory()
        return snapshot

    def _load_apart(self) -> _Snapshot:
        """_load() on a thread whose database connection, and its page cache, closes after."""
        if threading.current_thread() is not threading.main_thread():
            try:
                return self._load()
            finally:
                self._source.close_thread_connection()
        # The main thread's connection stays open for the till: reading every product
        # through it would leave its page cache full (about 15 MB for 100,000 products).
        with ThreadPoolExecutor(1, thread_name_prefix="catalog-load") as pool:
            return pool.submit(self._load_apart).result()

    def _load(self) -> _Snapshot:
        started = time.perf_counter()
        version = self._source.version()
        loader = _Loader()
        loader.add(self._source.all_products())
        snapshot = loader.snapshot(version)
        log.info(
            "catalog v%d loaded: %d products, %d barcodes, %d KB encoded in %.2f s",
            version,
            snapshot.size,
            len(snapshot.by_barcode),
            len(snapshot.records.blob) // 1024,
            time.perf_counter() - started,
        )
        return snapshot
