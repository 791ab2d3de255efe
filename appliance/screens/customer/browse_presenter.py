"""Finding items without a barcode: categories and a name search over the whole catalog."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, OptionProperty, StringProperty

from appliance.core.cart import needs_weighing
from appliance.core.catalog import Product, ProductMatch
from appliance.core.events import Event
from appliance.screens.customer.background import LatestOnly, run_in_background
from appliance.screens.presenters.cart import CartPresenter
from appliance.screens.presenters.context import ScreenContext

log = logging.getLogger(__name__)

SEARCH_LIMIT = 50
CATEGORY_LIMIT = 200


@dataclass(frozen=True, slots=True)
class BrowseResults(Event):
    """A search or category listing finished on the worker thread."""

    generation: int
    products: tuple[Product, ...]


@dataclass(frozen=True, slots=True)
class CategoriesLoaded(Event):
    """The catalog's categories, read on the worker thread."""

    categories: tuple[str, ...]


class BrowsePresenter(EventDispatcher):
    """Categories, the search text, and the products found; main thread.

    Searching 100,000 products takes longer than a frame, so it runs on a worker; each
    request gets a generation number and an answer for an older one is dropped.
    """

    showing = OptionProperty("categories", options=["categories", "category", "search"])
    query = StringProperty("")
    category = StringProperty("")
    categories = ListProperty()
    results = ListProperty()  # one dict per product, for a RecycleView
    with_pictures = BooleanProperty(False)  # some product found has a picture: rows show them
    searching = BooleanProperty(False)

    def __init__(self, ctx: ScreenContext, cart: CartPresenter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._cart = cart
        self._catalog = ctx.services.app.lookup
        self._worker = LatestOnly("catalog-search")
        self._generation = 0
        self._products: tuple[Product, ...] = ()
        ctx.bus.subscribe(BrowseResults, self._answered)
        ctx.bus.subscribe(CategoriesLoaded, self._categories_loaded)
        ctx.session.bind(screen=self._screen_changed, language=lambda *_a: self._show_rows())

    def search(self, text: str) -> None:
        """Find products whose name holds `text`; an empty text shows the categories."""
        query = " ".join(text.split())
        if query == self.query and self.showing == "search":
            return
        self.query = query
        if not query:
            self.show_categories()
            return
        self.showing = "search"
        catalog = self._catalog
        self._start(lambda: catalog.search(query, limit=SEARCH_LIMIT))

    def show_category(self, category: str) -> None:
        """List the products of one category."""
        self.category = category
        self.showing = "category"
        catalog = self._catalog
        self._start(lambda: catalog.in_category(category, limit=CATEGORY_LIMIT))

    def show_categories(self) -> None:
        """Back to the list of categories."""
        self._generation += 1  # whatever is still running is no longer wanted
        self.showing = "categories"
        self.searching = False
        self.category = ""
        self._products = ()
        self.results = []
        self.with_pictures = False

    def add(self, sku: str) -> None:
        """Put one of a found product in the cart."""
        product = next((p for p in self._products if p.sku == sku), None)
        if product is None or not self._cart.scan(sku):
            return
        if needs_weighing(ProductMatch(product)):
            return  # weighing: the cart says when its line is in, or why it is not
        tr = self._ctx.tr
        name = product.name_in(tr.locale)
        self._ctx.session.say(tr._("{name} is in your basket.").format(name=name))

    def _start(self, find: Any) -> None:
        self._generation += 1
        generation = self._generation
        self.searching = True
        bus = self._ctx.bus

        def job() -> None:
            bus.post(BrowseResults(generation, tuple(find())))

        self._worker.submit(job)

    def _answered(self, event: BrowseResults) -> None:
        if event.generation != self._generation:
            log.debug("dropped stale results of request %d", event.generation)
            return
        self.searching = False
        self._products = event.products
        self._show_rows()

    def _show_rows(self) -> None:
        tr, picture = self._ctx.tr, self._catalog.picture_path
        self.with_pictures = any(product.thumbnail for product in self._products)
        self.results = [
            {
                "sku": product.sku,
                "name": product.name_in(tr.locale),
                "price": tr.money(product.price.minor, product.price.currency),
                "restricted": product.age_restriction > 0,
                "picture": picture(product.thumbnail),
            }
            for product in self._products
        ]

    def _screen_changed(self, _session: Any, screen: str) -> None:
        if screen != "browse":
            return
        self.query = ""
        self.show_categories()
        catalog, bus = self._catalog, self._ctx.bus
        # Its own thread: a search typed meanwhile must not replace it in the search worker.
        run_in_background(
            "catalog-categories", lambda: bus.post(CategoriesLoaded(tuple(catalog.categories())))
        )

    def _categories_loaded(self, event: CategoriesLoaded) -> None:
        self.categories = list(event.categories)
