"""Lays the domain's Receipt out on paper through a python-escpos printer object.

The printer object may be any python-escpos `Escpos` (Network, Serial, Usb, Dummy): this
module only calls its public text, style, QR and cut methods, so the same layout goes
to every transport and to tests that collect the bytes.
"""

from __future__ import annotations

import logging
import re
import textwrap
from typing import Any

from appliance.core.receipt import Receipt, ReceiptLine, TextLine

log = logging.getLogger(__name__)

DEFAULT_COLUMNS = 42  # font A on 80 mm paper at 512 dots (TM-T88); 576-dot heads fit 48
BARCODE_HEIGHT = 64  # dots
BARCODE_MODULE = 2  # dots per narrow bar: a 13-character CODE128 fits 80 mm paper
QR_MODULE = 5  # dots per QR module
COPY_MARK = "*** COPY ***"
# Text from the catalog or the store settings must never reach the printer as commands.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " "})


def columns_of(printer: Any) -> int:
    """Characters per line in font A, from the printer's profile; 42 when it does not say."""
    try:
        return int(printer.profile.get_columns(0))
    except Exception:  # a profile without font data: any lookup failure means "unknown"
        return DEFAULT_COLUMNS


def lay_out(printer: Any, receipt: Receipt, width: int) -> None:
    """Send the whole receipt through `printer`: header, lines, totals, codes, footer, cut."""
    p = printer
    p.hw("INIT")  # forget whatever modes an earlier, interrupted job left behind
    p.set(align="center", bold=True, double_width=True, double_height=True)
    for part in _wrap(receipt.store_name, width // 2):
        p.textln(part)
    p.set(normal_textsize=True, bold=False)
    for line in receipt.header:
        for part in _wrap(line, width):
            p.textln(part)
    if receipt.title:
        p.set(bold=True, double_width=True, double_height=True)
        p.textln(_clean(receipt.title)[: width // 2])
        p.set(normal_textsize=True, bold=False)
    if receipt.copy:
        _copy_mark(p, width)
    p.set(align="left")
    p.ln()
    when, number = _clean(receipt.created_at), _clean(receipt.receipt_number)
    if len(when) + len(number) < width:
        p.textln(_pair(when, number, width))
    else:
        p.textln(when)
        p.textln(number)
    if receipt.lines or receipt.total:  # a report has neither: its body says it all
        p.textln("-" * width)
        for item in receipt.lines:
            _item(p, item, width)
        p.textln("-" * width)
    if receipt.discount_total:
        p.textln(_pair("Discount", receipt.discount_total, width))
    _taxes(p, receipt.taxes, width)
    if receipt.total:
        p.set(bold=True, double_height=True)
        p.textln(_pair("TOTAL", receipt.total, width))
        p.set(normal_textsize=True, bold=False)
    for name, amount in receipt.tenders:
        p.textln(_pair(name, amount, width))
    if receipt.change:
        p.textln(_pair("Change", receipt.change, width))
    _body(p, receipt.body, width)
    if receipt.card_slip:  # the terminal's own slip, as it sent it (already masked)
        p.textln("-" * width)
        for line in receipt.card_slip:
            for part in _wrap(line, width):
                p.textln(part)
    p.ln()
    _barcode(p, receipt.receipt_number)
    if receipt.sale_id:
        p.set(align="center")
        p.qr(receipt.sale_id, size=QR_MODULE, native=bool(p.profile.supports("qrCode")))
    if receipt.copy:  # a torn-off bottom half must not pass for the original either
        _copy_mark(p, width)
    p.set(align="center")
    for line in receipt.footer:
        for part in _wrap(line, width):
            p.textln(part)
    p.cut()


def _item(p: Any, item: ReceiptLine, width: int) -> None:
    """Name left and amount right; quantity or weight and the discount on lines below."""
    amount = _clean(item.amount)
    parts = _wrap(item.text, max(8, width - len(amount) - 1)) or [""]
    p.textln(_pair(parts[0], amount, width))
    for part in parts[1:]:
        p.textln(part)
    quantity = _clean(item.quantity)
    if quantity and quantity != "1":
        plain = quantity.lstrip("-").isdigit()
        p.textln(f"  Qty {quantity}" if plain else f"  {quantity}")
    if item.discount:
        p.textln(_pair("  Discount", item.discount, width))


def _copy_mark(p: Any, width: int) -> None:
    """COPY in large bold letters, centred: a reprint never passes for the original."""
    p.set(align="center", bold=True, double_width=True, double_height=True)
    p.textln(COPY_MARK[: width // 2])
    p.set(normal_textsize=True, bold=False)


def _body(p: Any, body: tuple[TextLine, ...], width: int) -> None:
    """Free lines (a report's sections): text left and value right, bold where asked."""
    for line in body:
        if line.bold:
            p.set(bold=True)
        if line.value:
            p.textln(_pair(line.text, line.value, width))
        elif line.text:
            for part in _wrap(line.text, width):
                p.textln(part)
        else:
            p.ln()
        if line.bold:
            p.set(bold=False)


def _taxes(p: Any, taxes: tuple[tuple[str, str, str], ...], width: int) -> None:
    """The tax breakdown: rate, net and tax per rate, under a heading."""
    if not taxes:
        return
    amount_w = (width - 10) // 2
    p.textln(_row(("Tax rate", "Net", "Tax"), width, amount_w))
    for rate, net, tax in taxes:
        p.textln(_row((rate, net, tax), width, amount_w))


def _barcode(p: Any, receipt_number: str) -> None:
    """The receipt number as CODE128 (code set B), so a scan finds the sale for a refund."""
    if not receipt_number or not all(" " <= ch <= "~" for ch in receipt_number):
        log.warning("receipt number %r cannot be a CODE128 barcode; left out", receipt_number)
        return
    code = "{B" + receipt_number.replace("{", "{{")
    # Escpos.barcode() prints "Using hardware barcode renderer" to stdout on every call;
    # _hw_barcode is the hardware path it hands over to, so use it when it is there.
    draw = getattr(p, "_hw_barcode", None)
    if draw is not None:
        draw(code, "CODE128", BARCODE_HEIGHT, BARCODE_MODULE, "BELOW", "A", True, "B", True)
    else:
        p.barcode(code, "CODE128", BARCODE_HEIGHT, BARCODE_MODULE, function_type="B")
    p.ln()


def _clean(text: str) -> str:
    """Printable text: no control bytes, and plain spaces for the thin ones babel uses."""
    return _CONTROL.sub("", text.translate(_SPACES))


def _wrap(text: str, width: int) -> list[str]:
    """`text` cleaned and broken into lines of at most `width` characters."""
    return textwrap.wrap(_clean(text), max(1, width)) or ([""] if text else [])


def _pair(left: str, right: str, width: int) -> str:
    """`left` and `right` on one line, `right` flush with the right edge."""
    left, right = _clean(left), _clean(right)
    room = max(0, width - len(right) - 1)
    return f"{left[:room]:<{room}} {right}"


def _row(cells: tuple[str, str, str], width: int, amount_w: int) -> str:
    """Three columns: the first left-aligned, the two amounts right-aligned."""
    first, second, third = (_clean(cell) for cell in cells)
    first_w = width - 2 * amount_w
    amounts = "".join(f"{cell[-amount_w:]:>{amount_w}}" for cell in (second, third))
    return f"{first[:first_w]:<{first_w}}{amounts}"
