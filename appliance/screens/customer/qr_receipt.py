"""The e-receipt as a QR code: a link to the receipt, or the receipt itself in short."""

from __future__ import annotations

from dataclasses import dataclass

import qrcode
from kivy.graphics.texture import Texture
from qrcode.constants import ERROR_CORRECT_M

from appliance.core.sale import Sale
from appliance.screens.i18n import Translator

# A QR code holds about 2,300 bytes at this error correction; a long receipt is cut short.
MAX_QR_TEXT = 1400
BOX_PIXELS = 6  # each module this many pixels: crisp when scaled up, small to upload


@dataclass(frozen=True, slots=True)
class QrPixels:
    """A rendered QR code as RGBA bytes, ready to become a texture on the main thread."""

    width: int
    height: int
    rgba: bytes


def receipt_link(template: str, sale: Sale) -> str | None:
    """The configured e-receipt URL with "{id}", "{receipt}" and "{token}" filled in.

    None when the template asks for a token the sale has none of (a sale committed before
    tokens existed): a link without its secret would lead nowhere.
    """
    if "{token}" in template and not sale.receipt_token:
        return None
    return template.format(id=sale.id, receipt=sale.receipt_number, token=sale.receipt_token)


def receipt_text(sale: Sale, tr: Translator, store_name: str) -> str:
    """A compact text receipt: store, number, date, lines and total, in the shown language."""
    head = [
        store_name,
        tr._("Receipt {number}").format(number=sale.receipt_number),
        tr.datetime(sale.created_at),
    ]
    tail = [tr._("Total {amount}").format(amount=tr.money(sale.total, sale.currency))]
    lines: list[str] = []
    for n, line in enumerate(sale.lines):
        quantity = str(line.quantity) if line.measure == "each" else tr.kilograms(line.quantity)
        text = tr._("{quantity} × {name}: {amount}").format(
            quantity=quantity, name=line.name, amount=tr.money(line.amount, sale.currency)
        )
        if len("\n".join([*head, *lines, text, *tail])) > MAX_QR_TEXT:
            left = len(sale.lines) - n
            lines.append(
                tr.n_("… and {count} more item", "… and {count} more items", left).format(
                    count=left
                )
            )
            break
        lines.append(text)
    return "\n".join([*head, *lines, *tail])


def render_qr(data: str) -> QrPixels:
    """Encode `data` as a QR code picture; pure Python and slow-ish: call off the main thread."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=BOX_PIXELS, border=2)
    code.add_data(data.encode("utf-8"))
    code.make(fit=True)
    image = code.make_image(fill_color="black", back_color="white").get_image().convert("RGBA")
    return QrPixels(image.width, image.height, image.tobytes())


def qr_texture(pixels: QrPixels) -> Texture:
    """The picture as a Kivy texture; main thread (it talks to OpenGL)."""
    texture = Texture.create(size=(pixels.width, pixels.height), colorfmt="rgba")
    texture.mag_filter = "nearest"  # sharp modules when drawn larger than rendered
    texture.blit_buffer(pixels.rgba, colorfmt="rgba", bufferfmt="ubyte")
    texture.flip_vertical()  # PIL's first row is the top; OpenGL's is the bottom
    return texture
