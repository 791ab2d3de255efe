"""The catalog the checkout scans against: held in memory, reloaded when it changes."""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appliance.core.catalog import Product
from appliance.store.catalog import SqliteCatalog

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
_CHUNK = 4_096  # products folded at once while building


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
    parts = (product.name, *(name for _, name in product.names), product.sku)
    return _FIELD.join(part if part.isprintable() else _CONTROL.sub(" ", part) for part in parts)


@dataclass(frozen=True, slots=True)
class _SearchIndex:
    """Every product's folded name, translations and SKU in one string, in name order.

    One string searched with str.find (C speed) costs about 80 bytes a product; strings
    or word indexes per product would cost far more of the 150 MB the kiosk may use.
    """

    text: str  # one line per product, joined by _LINE
    starts: array[int]  # where each product's line starts in `text` (8 bytes each)
    products: list[Product]  # in the same (name) order
    categories: dict[str, list[Product]]  # non-empty category -> its products, by name

    @classmethod
    def build(cls, products: Iterable[Product]) -> _SearchIndex:
        """The index of `products`."""
        unordered = list(products)
        lines: list[str] = []
        # Folded in chunks: the whole catalog at once would briefly need several copies
        # of its text (wide strings, NFKD), and a resident peak stays in the RSS.
        for first in range(0, len(unordered), _CHUNK):
            raw = _LINE.join(_raw_line(p) for p in unordered[first : first + _CHUNK])
            lines.extend(_fold_bulk(raw).split(_LINE))
        # Lines start with the folded name, and _FIELD sorts before any letter: sorting
        # the lines sorts by name (then translations and SKU), accents ignored.
        order = sorted(range(len(lines)), key=lines.__getitem__)
        ordered = [unordered[i] for i in order]
        starts: array[int] = array("q", bytes(8 * len(order)))
        position = 0
        for n, i in enumerate(order):
            starts[n] = position
            position += len(lines[i]) + 1
        text = _LINE.join([lines[i] for i in order])
        del lines
        categories: dict[str, list[Product]] = {}
        for product in ordered:
            if product.category:
                categories.setdefault(product.category, []).append(product)
        return cls(text, starts, ordered, categories)

    def search(self, words: list[str], limit: int) -> list[Product]:
        """Products whose line holds every word, in name order, at most `limit`."""
        counts = {word: self.text.count(word) for word in words}
        lead = min(words, key=counts.__getitem__)
        if counts[lead] > _HITS_WORTH_CHECKING and len(words) > 1:
            return self._search_by_pattern(words, limit)
        others = [w for w in words if w is not lead]
        text, starts = self.text, self.starts
        found: list[Product] = []
        position = text.find(lead)
        while position >= 0 and len(found) < limit:
            index = bisect_right(starts, position) - 1
            end = text.find(_LINE, position)
            end = len(text) if end < 0 else end
            line = text[starts[index] : end]
            if all(word in line for word in others):
                found.append(self.products[index])
            position = text.find(lead, end + 1)
        return found

    def _search_by_pattern(self, words: list[str], limit: int) -> list[Product]:
        lookaheads = "".join(f"(?=[^\n]*{re.escape(word)})" for word in words)
        found: list[Product] = []
        for match in re.finditer(f"(?m)^{lookaheads}", self.text):
            found.append(self.products[bisect_right(self.starts, match.start()) - 1])
            if len(found) >= limit:
                break
        return found


@dataclass(frozen=True, slots=True)
class _Snapshot:
    version: int
    by_barcode: dict[str, Product]
    by_sku: dict[str, Product]
    index: _SearchIndex


class MemoryCatalog:
    """CatalogLookup from RAM (~0.5 KB a product), so a scan never waits on the disk.

    A scan is a dictionary lookup. At most every `recheck_seconds` a lookup reads the
    catalog version (one indexed row); if another process (`appliance catalog import`)
    or this one changed the catalog, a worker thread loads the new catalog while scans
    go on against the old one, and the new one replaces it in one assignment.
    Lookups: main thread. search(), categories() and in_category() are thread-safe and
    meant for a worker thread (a search over 100,000 products takes tens of milliseconds);
    they read the snapshot the scans keep current and never touch the database once loaded.
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
        return self._current().by_barcode.get(key)

    def by_sku(self, sku: str) -> Product | None:
        """The product with this SKU."""
        return self._current().by_sku.get(sku)

    def search(self, text: str, limit: int = 50) -> list[Product]:
        """Products whose name, a translation or SKU holds every word of `text`, by name.

        Case and accents are ignored ("cafe" finds "Café"); "" finds nothing.
        """
        words = fold(text).split()
        if not words or limit <= 0:
            return []
        return self._snapshot_for_any_thread().index.search(words, limit)

    def categories(self) -> list[str]:
        """The categories products are in, sorted (case and accents ignored)."""
        categories = self._snapshot_for_any_thread().index.categories
        return sorted(categories, key=lambda name: (fold(name), name))

    def in_category(self, category: str, limit: int = 200) -> list[Product]:
        """Products of a category, by name, at most `limit`."""
        found = self._snapshot_for_any_thread().index.categories.get(category, [])
        return found[: max(limit, 0)]

    def __len__(self) -> int:
        return len(self._current().by_sku)

    def refresh(self) -> int:
        """Load the catalog now (at start, so the first scan is fast); returns its size."""
        snapshot = self._snapshot = self._load()
        self._checked_at = self._monotonic()
        return len(snapshot.by_sku)

    def _snapshot_for_any_thread(self) -> _Snapshot:
        """The current snapshot without the main thread's recheck (that stays with scans)."""
        snapshot = self._snapshot
        if snapshot is not None:
            return snapshot
        with self._loading:
            if self._snapshot is None:
                try:
                    self._snapshot = self._load()
                finally:
                    if threading.current_thread() is not threading.main_thread():
                        self._source.close_thread_connection()
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
            self._snapshot = self._load()
        except Exception:
            log.exception("catalog reload failed; scanning against the previous catalog")
        finally:
            self._source.close_thread_connection()

    def _load(self) -> _Snapshot:
        started = time.perf_counter()
        version = self._source.version()
        by_barcode: dict[str, Product] = {}
        by_sku: dict[str, Product] = {}
        for product in self._source.all_products():
            by_sku[product.sku] = product
            for key in product.barcodes:
                by_barcode[key] = product
        index = _SearchIndex.build(by_sku.values())
        log.info(
            "catalog v%d loaded: %d products, %d barcodes in %.2f s",
            version,
            len(by_sku),
            len(by_barcode),
            time.perf_counter() - started,
        )
        return _Snapshot(version, by_barcode, by_sku, index)
