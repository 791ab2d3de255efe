"""A receipt as a PDF the width of a till roll, in an embedded TrueType font.

The font is DejaVu Sans when the system has it (Debian: fonts-dejavu-core), which covers
Latin, Greek and Cyrillic; otherwise Bitstream Vera, which ships inside ReportLab and
covers western European text. ReportLab's built-in Helvetica would need no file but
writes WinAnsi only: a Polish or Czech name would print as boxes.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import reportlab
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from hub.receipts.view import ReceiptView

WIDTH = 80 * mm  # a till roll: the PDF prints on one, and reads on a phone as it would
MARGIN = 5 * mm
GAP = 3 * mm  # between a name and the amount beside it
LEADING = 12  # points from one baseline to the next
SIZE = 8.5
# Viewers show pages up to 200 inches (14,400 pt) at most; a longer receipt gets more pages.
MAX_PAGE_HEIGHT = 1440
FONT, BOLD = "ReceiptSans", "ReceiptSans-Bold"
_SYSTEM_FONTS = Path("/usr/share/fonts/truetype/dejavu")
_BUNDLED_FONTS = Path(reportlab.__file__).parent / "fonts"
_FONT_FILES = (
    (_SYSTEM_FONTS / "DejaVuSans.ttf", _SYSTEM_FONTS / "DejaVuSans-Bold.ttf"),
    (_BUNDLED_FONTS / "Vera.ttf", _BUNDLED_FONTS / "VeraBd.ttf"),
)


@dataclass(frozen=True, slots=True)
class Text:
    """One string drawn: its font, where its baseline starts (points), and the text."""

    font: str
    x: float
    y: float
    text: str


@dataclass(frozen=True, slots=True)
class Page:
    """One page: its height (points) and what is drawn on it."""

    height: float
    texts: tuple[Text, ...]


@functools.cache
def register_fonts() -> Path:
    """Register the receipt's regular and bold fonts with ReportLab; returns the regular file."""
    regular, bold = next(pair for pair in _FONT_FILES if all(f.is_file() for f in pair))
    pdfmetrics.registerFont(TTFont(FONT, str(regular)))
    pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
    return regular


def _width(text: str, font: str) -> float:
    return float(pdfmetrics.stringWidth(text, font, SIZE))


def _wrapped(text: str, font: str, width: float) -> list[str]:
    """The text in lines no wider than `width`: at spaces, or inside a word too long.

    A leading indent is kept on every line.
    """
    if _width(text, font) <= width:
        return [text]
    body = text.lstrip(" ")
    indent = text[: len(text) - len(body)]
    width -= _width(indent, font)
    lines: list[str] = []
    line = ""
    for word in body.split(" "):
        candidate = f"{line} {word}" if line else word
        if _width(candidate, font) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:
            if line and _width(line + char, font) > width:
                lines.append(line)
                line = ""
            line += char
    if line or not lines:
        lines.append(line)
    return [indent + line for line in lines]


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


def layout(view: ReceiptView) -> list[Page]:
    """The receipt's pages, each as tall as its rows and at most MAX_PAGE_HEIGHT."""
    register_fonts()
    full = WIDTH - 2 * MARGIN
    placed: list[tuple[str, str, str]] = []  # (font, left, right), one per printed line
    for font, left, right in _rows(view):
        if _width(right, font) > full / 2:
            # Too wide to share a line (a long device id): each gets lines of its own.
            placed += [(font, part, "") for part in _wrapped(left, font, full) if part]
            placed += [(font, "", part) for part in _wrapped(right, font, full)]
            continue
        room = full - (_width(right, font) + GAP if right else 0)
        for n, part in enumerate(_wrapped(left, font, room)):
            placed.append((font, part, right if n == 0 else ""))
    per_page = int((MAX_PAGE_HEIGHT - 2 * MARGIN) // LEADING)
    pages = []
    for start in range(0, len(placed), per_page):
        rows = placed[start : start + per_page]
        height = 2 * MARGIN + LEADING * len(rows)
        texts = []
        y = height - MARGIN - SIZE
        for font, left, right in rows:
            if left:
                texts.append(Text(font, MARGIN, y, left))
            if right:
                texts.append(Text(font, WIDTH - MARGIN - _width(right, font), y, right))
            y -= LEADING
        pages.append(Page(height, tuple(texts)))
    return pages


def receipt_pdf(view: ReceiptView) -> bytes:
    """The receipt as a PDF: one page, or several for a receipt too long for one."""
    out = io.BytesIO()
    pages = layout(view)
    # invariant: no creation date in the file, so the same receipt is the same bytes.
    canvas = Canvas(out, pagesize=(WIDTH, pages[0].height), invariant=1)
    canvas.setTitle(f"{view.title} {view.receipt_number}")
    canvas.setAuthor(view.store.name)
    for page in pages:
        canvas.setPageSize((WIDTH, page.height))
        for text in page.texts:
            canvas.setFont(text.font, SIZE)
            canvas.drawString(text.x, text.y, text.text)
        canvas.showPage()
    canvas.save()
    return out.getvalue()
