"""A receipt as a PDF the width of a till roll, drawn with ReportLab's standard fonts.

ReportLab's built-in Helvetica needs no font file and writes WinAnsi text, which holds
the euro and pound signs and the accents of western European product names.
"""

from __future__ import annotations

import io

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from hub.receipts.view import ReceiptView

WIDTH = 80 * mm  # a till roll: the PDF prints on one, and reads on a phone as it would
MARGIN = 5 * mm
LEADING = 12  # points from one baseline to the next
FONT, BOLD, SIZE = "Helvetica", "Helvetica-Bold", 8.5


def _rows(view: ReceiptView) -> list[tuple[str, str, str]]:
    """(font, left text, right text) for each printed row, top to bottom."""
    store = view.store
    rows = [(BOLD, store.name, "")] if store.name else []
    rows += [(FONT, line, "") for line in store.address]
    if store.tax_id:
        rows.append((FONT, f"Tax id {store.tax_id}", ""))
    rows += [
        (FONT, "", ""),
        (BOLD, f"{view.title} {view.receipt_number}", ""),
        (FONT, view.date, view.device),
        (FONT, "", ""),
    ]
    for line in view.lines:
        rows.append((FONT, line.name, line.amount))
        rows.append((FONT, f"   {line.quantity}", ""))
        if line.discount:
            rows.append((FONT, "   Discount", line.discount))
    rows.append((FONT, "", ""))
    if view.discount_total:
        rows.append((FONT, "Discounts", f"-{view.discount_total}"))
    rows.append((BOLD, "Total", view.total))
    if view.rounding:
        rows.append((FONT, "Cash rounding", view.rounding))
    for tender in view.tenders:
        rows.append((FONT, tender.label, tender.amount))
        if tender.detail:
            rows.append((FONT, f"   {tender.detail}", ""))
    rows.append((FONT, "", ""))
    included = "included" if view.prices_include_tax else "added"
    rows.append((FONT, f"Tax ({included})", ""))
    for tax in view.taxes:
        rows.append((FONT, f"   {tax.label}: net {tax.net}", tax.tax))
    return rows


def receipt_pdf(view: ReceiptView) -> bytes:
    """The receipt as one PDF page exactly as tall as its rows."""
    rows = _rows(view)
    height = 2 * MARGIN + LEADING * len(rows)
    out = io.BytesIO()
    # invariant: no creation date in the file, so the same receipt is the same bytes.
    canvas = Canvas(out, pagesize=(WIDTH, height), invariant=1)
    canvas.setTitle(f"{view.title} {view.receipt_number}")
    canvas.setAuthor(view.store.name)
    y = height - MARGIN - SIZE
    for font, left, right in rows:
        canvas.setFont(font, SIZE)
        if left:
            canvas.drawString(MARGIN, y, left)
        if right:
            canvas.drawRightString(WIDTH - MARGIN, y, right)
        y -= LEADING
    canvas.showPage()
    canvas.save()
    return out.getvalue()
