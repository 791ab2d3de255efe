"""The e-receipt pages: /r/<token> for the phone, /r/<token>/receipt.pdf to keep.

Open to anyone holding the link, so each answer names one sale at most: no listing, no
ids to follow, and one 404 for every link that opens nothing (malformed, unknown,
expired, or a sale that never came). Plain HTML without script: the page waiting for a
sale reloads itself with a meta refresh.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from litestar import MediaType, Response, Router, get
from litestar.params import FromPath
from litestar.static_files import create_static_files_router
from peewee import Database

from appliance.core.clock import Clock, SystemClock
from hub.receipts.lookup import (
    FirstSeen,
    Found,
    Pending,
    ReceiptRules,
    StoreDetails,
    find_receipt,
)
from hub.receipts.pdf import receipt_pdf
from hub.receipts.view import ReceiptView, receipt_view

STATIC_PATH = "/receipt-static"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The path is the secret: no other site may learn it from a link followed from here.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
}

_TEMPLATES = Environment(
    loader=PackageLoader("hub.receipts", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.globals["static"] = STATIC_PATH


def _html(template: str, status: int = 200, **context: Any) -> Response[str]:
    text = _TEMPLATES.get_template(template).render(**context)
    return Response(text, status_code=status, media_type=MediaType.HTML, headers=HEADERS)


def _missing() -> Response[str]:
    return _html("missing.html", status=404)


def _view(found: Found, rules: ReceiptRules) -> ReceiptView:
    # Without details configured for the store, its id at the hub is the best name known.
    store = rules.stores.get(found.store or "") or StoreDetails(name=found.store or "")
    return receipt_view(found.document, store, rules.locale)


def receipt_routes(db: Database, rules: ReceiptRules, clock: Clock | None = None) -> list[Any]:
    """The receipt page, its PDF and its stylesheet, for the sales in `db`."""
    time = clock or SystemClock()
    # Per worker process: a token of unknown time asked of several workers is waited for
    # from each one's first sight, a little longer at worst.
    first_seen = FirstSeen()

    def lookup(token: str) -> Found | Pending | None:
        return find_receipt(db, token, time.now(), rules, first_seen)

    @get("/r/{token:str}", sync_to_thread=True, include_in_schema=False)
    def receipt_page(token: FromPath[str]) -> Response[str]:
        """A sale's receipt for a phone, or a page that waits for the sale to arrive."""
        found = lookup(token)
        if isinstance(found, Pending):
            return _html("waiting.html", refresh_s=rules.refresh_s)
        if found is None:
            return _missing()
        expires: datetime = found.expires_at
        return _html(
            "receipt.html", r=_view(found, rules), token=token, expires=f"{expires:%Y-%m-%d}"
        )

    @get("/r/{token:str}/receipt.pdf", sync_to_thread=True, include_in_schema=False)
    def receipt_file(token: FromPath[str]) -> Response[Any]:
        """The sale's receipt as a PDF."""
        found = lookup(token)
        if not isinstance(found, Found):
            return _missing()
        view = _view(found, rules)
        name = f"receipt-{view.receipt_number}.pdf".replace('"', "")
        return Response(
            receipt_pdf(view),
            media_type="application/pdf",
            headers={**HEADERS, "Content-Disposition": f'inline; filename="{name}"'},
        )

    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[Path(__file__).parent / "static"],
        include_in_schema=False,
    )
    return [
        Router("/", route_handlers=[receipt_page, receipt_file], include_in_schema=False),
        static,
    ]
