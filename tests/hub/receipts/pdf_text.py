"""The text a ReportLab PDF draws, read back without a PDF library: its page streams decoded."""

from __future__ import annotations

import base64
import re
import zlib

_STREAM = re.compile(rb"<<(.*?)>>\s*stream\r?\n(.*?)endstream", re.S)
_SHOWN = re.compile(rb"\(((?:\\.|[^\\)])*)\)\s*Tj")


def pdf_text(pdf: bytes) -> str:
    """Every string shown with Tj, in drawing order, one per line (WinAnsi decoded)."""
    shown: list[str] = []
    for header, body in _STREAM.findall(pdf):
        data = body.strip()
        if b"ASCII85Decode" in header:
            data = base64.a85decode(data.removesuffix(b"~>"), adobe=False)
        if b"FlateDecode" in header:
            data = zlib.decompress(data)
        for raw in _SHOWN.findall(data):
            text = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), raw)
            text = re.sub(rb"\\(.)", rb"\1", text)
            shown.append(text.decode("cp1252"))
    return "\n".join(shown)
