"""Cutting a snapshot into chunks that fit a device's MQTT packet size, the same way every time."""

from __future__ import annotations

import logging
import math

import msgspec

from appliance.mqtt.payloads import MAX_SAFE, ProductPayload

log = logging.getLogger(__name__)

_WIDEST_STOCK = len(str(-MAX_SAFE))


def cut_into_parts(
    payloads: list[ProductPayload], size: int, max_bytes: int | None, header: int
) -> list[list[ProductPayload]]:
    """Products in parts of at most `size` products and `max_bytes` bytes of JSON (with header).

    A part's size counts every stock at its widest, so how a version is cut depends on its
    products and the limit only, never on the levels of the moment: a resumed download
    gets the numbering of the chunks it already holds. A product too big on its own still
    goes, alone (the broker drops it; the log says so).
    """
    todo = [payloads[i : i + size] for i in range(0, len(payloads), size)][::-1]
    if max_bytes is None:
        return todo[::-1] or [[]]
    encoder = msgspec.json.Encoder()
    parts: list[list[ProductPayload]] = []
    while todo:
        part = todo.pop()
        widened = sum(_WIDEST_STOCK - len(str(p.stock)) for p in part if p.stock is not None)
        need = header + len(encoder.encode(part)) + widened
        if need <= max_bytes:
            parts.append(part)
        elif len(part) == 1:
            log.error("product %s alone is %d bytes, over %d", part[0].sku, need, max_bytes)
            parts.append(part)
        else:
            step = math.ceil(len(part) / max(2, math.ceil(need / max_bytes)))
            todo.extend([part[i : i + step] for i in range(0, len(part), step)][::-1])
    return parts or [[]]
