"""The text a ReportLab PDF draws, read back without a PDF library: its page streams decoded.

Text in an embedded TrueType subset is mapped back to Unicode through the font's
ToUnicode CMap; text in a standard font is WinAnsi.
"""

from __future__ import annotations

import base64
import re
import zlib

_OBJECT = re.compile(rb"(\d+) 0 obj\s*<<(.*?)>>\s*(?:stream\r?\n(.*?)endstream|endobj)", re.S)
_FONT = re.compile(rb"/Name /(\S+).*?/ToUnicode (\d+) 0 R", re.S)
_SHOWN = re.compile(rb"/(\S+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\)\s*Tj")
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]+)> <([0-9A-Fa-f]+)>")


def _data(header: bytes, body: bytes) -> bytes:
    data = body.strip()
    if b"ASCII85Decode" in header:
        data = base64.a85decode(data.removesuffix(b"~>"), adobe=False)
    if b"FlateDecode" in header:
        data = zlib.decompress(data)
    return data


def _unescaped(raw: bytes) -> bytes:
    text = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), raw)
    return re.sub(rb"\\(.)", rb"\1", text)


def pdf_text(pdf: bytes) -> str:
    """Every string shown with Tj, in drawing order, one per line."""
    streams = {int(n): (header, body) for n, header, body in _OBJECT.findall(pdf) if body}
    maps: dict[bytes, dict[int, str]] = {}
    for _n, header, body in _OBJECT.findall(pdf):
        font = _FONT.search(header)
        if font is not None and not body:
            cmap = _data(*streams[int(font[2])])
            maps[font[1]] = {
                int(code, 16): chr(int(char, 16)) for code, char in _BFCHAR.findall(cmap)
            }
    shown: list[str] = []
    current: dict[int, str] | None = None
    for _n, (header, body) in sorted(streams.items()):
        if b"FontFile" in header or b"Length1" in header or b"CMapName" in _data(header, body):
            continue  # a font's program or its map, not a page
        for font, raw in _SHOWN.findall(_data(header, body)):
            if font:
                current = maps.get(font)
                continue
            data = _unescaped(raw)
            if current is None:
                shown.append(data.decode("cp1252"))
            else:
                shown.append("".join(current.get(byte, "\ufffd") for byte in data))
    return "\n".join(shown)
