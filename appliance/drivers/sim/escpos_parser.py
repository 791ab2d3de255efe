"""ESC/POS decoding for the printer simulator: bytes in, printed jobs out.

`EscposParser` is incremental: feed it the byte stream in chunks of any size (as a socket
or a pty delivers it) and it returns what happened in order: status requests the
printer must answer (`StatusRequest`), drawer kicks (`Kick`) and jobs completed by a cut
(`PrintedJob`). Unknown or malformed commands are skipped, never raised: a printer fed
garbage prints garbage and carries on. Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, HT, CR, FF, NUL = 0x0A, 0x09, 0x0D, 0x0C, 0x00

Align = Literal["left", "center", "right"]
BlockKind = Literal["text", "barcode", "qr", "image"]

# ESC t n: the character code tables a TM-T88-class printer knows, as Python codecs.
CODE_PAGES: dict[int, str] = {
    0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 13: "cp857", 14: "cp737",
    15: "iso8859_7", 16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 32: "cp720",
    33: "cp775", 34: "cp855", 35: "cp861", 36: "cp862", 37: "cp864", 38: "cp869",
    39: "iso8859_2", 40: "iso8859_15", 45: "cp1250", 46: "cp1251", 47: "cp1253",
    48: "cp1254", 49: "cp1255", 50: "cp1256", 51: "cp1257", 52: "cp1258", 53: "kz1048",
}  # fmt: skip

# Commands we only step over: how many parameter bytes follow "ESC x" / "GS x" / "FS x".
_ESC_ARGS = {
    0x0C: 0, 0x20: 1, 0x24: 2, 0x25: 1, 0x32: 0, 0x33: 1, 0x3C: 0, 0x3D: 1, 0x3F: 1,
    0x42: 2, 0x47: 1, 0x4A: 1, 0x4B: 1, 0x4C: 0, 0x4D: 1, 0x52: 1, 0x53: 0, 0x54: 1,
    0x55: 1, 0x56: 1, 0x57: 8, 0x5C: 2, 0x63: 2, 0x65: 1, 0x66: 2, 0x72: 1, 0x7B: 1,
}  # fmt: skip
_GS_ARGS = {
    0x23: 1, 0x24: 2, 0x2F: 1, 0x3A: 0, 0x42: 1, 0x48: 1, 0x49: 1, 0x4C: 2, 0x50: 2,
    0x54: 1, 0x57: 2, 0x5C: 2, 0x5E: 3, 0x61: 1, 0x62: 1, 0x63: 0, 0x66: 1, 0x67: 4,
    0x68: 1, 0x72: 1, 0x77: 1, 0x7C: 1,
}  # fmt: skip
_FS_ARGS = {0x21: 1, 0x26: 0, 0x2D: 1, 0x2E: 0, 0x43: 1, 0x53: 2, 0x57: 1, 0x70: 2, 0x32: 74}
# Commands this parser acts on, with how many parameter bytes they need.
_ESC_NEED = {0x21: 1, 0x2D: 1, 0x45: 1, 0x61: 1, 0x74: 1, 0x64: 1, 0x70: 3, 0x2A: 3}
_ALIGNS: tuple[Align, ...] = ("left", "center", "right")
_DC4_ARGS = {1: 2, 2: 2, 7: 1, 8: 7}  # DLE DC4 fn: parameters after fn
_TEXT = re.compile(rb"[\x20-\xff]+")
_MAX_NUL_TERMINATED = 256  # GS k function A and ESC D end at NUL; longer is garbage
_TAB = 8


@dataclass(frozen=True, slots=True)
class LineStyle:
    """How a line was printed: alignment, emphasis and character size multipliers."""

    align: Align = "left"
    bold: bool = False
    underline: int = 0
    width: int = 1
    height: int = 1


@dataclass(frozen=True, slots=True)
class Block:
    """One printed thing in paper order: a text line, a barcode, a QR code or an image."""

    kind: BlockKind
    text: str
    style: LineStyle = LineStyle()


@dataclass(frozen=True, slots=True)
class PrintedJob:
    """What came out of the printer between two cuts."""

    lines: list[str]
    barcodes: list[str]
    qr: list[str]
    cuts: int
    kicks: list[tuple[int, int]]  # (pin 2 or 5, pulse on-time in ms)
    raw: bytes
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """DLE EOT n: the host waits for one status byte (n: 1 printer, 2 offline, 3 error, 4 paper)."""

    n: int


@dataclass(frozen=True, slots=True)
class Kick:
    """ESC p or DLE DC4 1: a pulse on the drawer kick connector."""

    pin: int
    on_ms: int


Output = StatusRequest | Kick | PrintedJob


class EscposParser:
    """Incremental ESC/POS decoder; not thread-safe (one reader thread feeds it)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # bytes of an image or unknown block still to step over
        self._out: list[Output] = []
        self.reset()

    def reset(self) -> None:
        """Power cycle: forget the unfinished job, the modes and any half-received command."""
        self._buf.clear()
        self._skip = 0
        self._style = LineStyle()
        self._codec = CODE_PAGES[0]
        self._qr_data = ""
        self._line: list[str] = []
        self._line_style: LineStyle | None = None
        self._blocks: list[Block] = []
        self._kicks: list[tuple[int, int]] = []
        self._raw = bytearray()

    def feed(self, data: bytes) -> list[Output]:
        """Decode the next chunk; returns status requests, kicks and finished jobs in order."""
        self._buf += data
        buf, pos, end = self._buf, 0, len(self._buf)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                self._raw += buf[pos : pos + step]
                pos += step
                continue
            used = self._step(buf, pos, end)
            if used is None:
                break  # an incomplete command: wait for more bytes
            self._raw += buf[pos : pos + used]
            pos += used
            if self._out and isinstance(self._out[-1], PrintedJob) and not self._out[-1].raw:
                self._out[-1] = replace(self._out[-1], raw=bytes(self._raw))
                self._raw.clear()
        del buf[:pos]
        out, self._out = self._out, []
        return out

    def unfinished(self) -> PrintedJob | None:
        """What was printed since the last cut (None when nothing was), without a cut."""
        self._end_line(force=False)
        if not (self._blocks or self._kicks):
            return None
        return self._job(cuts=0, raw=bytes(self._raw))

    # -- one command -------------------------------------------------------------------

    def _step(self, buf: bytearray, pos: int, end: int) -> int | None:
        byte = buf[pos]
        if byte >= 0x20:
            match = _TEXT.match(buf, pos)
            assert match is not None
            self._text(match.group().decode(self._codec, errors="replace"))
            return match.end() - pos
        if byte in (LF, FF):
            self._end_line(force=True)
        elif byte == HT:
            column = sum(len(part) for part in self._line)
            self._text(" " * (_TAB - column % _TAB))
        elif byte == ESC:
            return self._esc(buf, pos, end)
        elif byte == GS:
            return self._gs(buf, pos, end)
        elif byte == FS:
            return self._fs(buf, pos, end)
        elif byte == DLE:
            return self._dle(buf, pos, end)
        return 1  # CR and other control bytes print nothing

    def _esc(self, buf: bytearray, pos: int, end: int) -> int | None:
        if end - pos < 2:
            return None
        cmd, args = buf[pos + 1], buf[pos + 2 : pos + 5]
        if len(args) < _ESC_NEED.get(cmd, 0):
            return None
        if cmd == 0x40:  # ESC @: initialise
            self._line, self._style, self._codec = [], LineStyle(), CODE_PAGES[0]
        elif cmd == 0x21:  # ESC !: print mode
            n = args[0]
            self._style = replace(
                self._style,
                bold=bool(n & 0x08),
                height=2 if n & 0x10 else 1,
                width=2 if n & 0x20 else 1,
                underline=1 if n & 0x80 else 0,
            )
        elif cmd == 0x45:  # ESC E: emphasis
            self._style = replace(self._style, bold=bool(args[0] & 1))
        elif cmd == 0x2D:  # ESC -: underline 0-2 (or '0'-'2')
            self._style = replace(self._style, underline=args[0] % 48 % 3)
        elif cmd == 0x61:  # ESC a: justification
            self._style = replace(self._style, align=_ALIGNS[args[0] % 48 % 3])
        elif cmd == 0x74:  # ESC t: character code table
            self._codec = CODE_PAGES.get(args[0], CODE_PAGES[0])
        elif cmd == 0x64:  # ESC d n: print and feed n lines
            for _ in range(max(1, args[0])):
                self._end_line(force=True)
        elif cmd == 0x70:  # ESC p m t1 t2: drawer kick, on time t1 x 2 ms
            pin = {0: 2, 48: 2, 1: 5, 49: 5}.get(args[0])
            if pin is not None:
                self._kick(pin, args[1] * 2)
        elif cmd in (0x69, 0x6D):  # ESC i / ESC m: obsolete cuts
            self._cut()
        elif cmd == 0x2A:  # ESC * m nL nH: bit image, 3 bytes per column when m is 32/33
            columns = args[1] + 256 * args[2]
            self._skip = columns * (3 if args[0] in (32, 33) else 1)
            self._image()
            return 5
        elif cmd == 0x44:  # ESC D n1..nk NUL: tab positions
            return _until_nul(buf, pos + 2, end, pos)
        elif cmd == 0x26:  # ESC & y c1 c2 [x d1..d(y*x)]...: user-defined characters
            return _user_chars(buf, pos, end)
        elif cmd == 0x28:  # ESC ( fn pL pH ...: length-prefixed
            return self._prefixed(buf, pos, end)
        else:
            count = _ESC_ARGS.get(cmd, 0)
            return 2 + count if end - pos >= 2 + count else None
        return 2 + _ESC_NEED.get(cmd, 0)

    def _gs(self, buf: bytearray, pos: int, end: int) -> int | None:
        if end - pos < 2:
            return None
        cmd = buf[pos + 1]
        if cmd == 0x28:  # GS ( fn pL pH ...: graphics, 2D codes and the rest
            return self._prefixed(buf, pos, end)
        if end - pos < 3:
            return None
        n = buf[pos + 2]
        if cmd == 0x21:  # GS !: character size, width in the high nibble
            self._style = replace(self._style, width=(n >> 4) % 8 + 1, height=(n & 7) + 1)
            return 3
        if cmd == 0x56:  # GS V m [n]: cut; functions B, C and D carry a feed amount
            if n in (0, 1, 48, 49):
                self._cut()
                return 3
            if end - pos < 4:
                return None
            self._cut()
            return 4
        if cmd == 0x6B:  # GS k m: barcode; function A ends at NUL, function B has a length
            return self._barcode(buf, pos, end, n)
        if cmd == 0x76:  # GS v 0 m xL xH yL yH: raster image, xL+xH*256 bytes per row
            if end - pos < 8:
                return None
            rows = buf[pos + 6] + 256 * buf[pos + 7]
            self._skip = (buf[pos + 4] + 256 * buf[pos + 5]) * rows
            self._image()
            return 8
        if cmd == 0x2A:  # GS * x y: define a downloaded image of x*y*8 bytes
            if end - pos < 4:
                return None
            self._skip = n * buf[pos + 3] * 8
            return 4
        if cmd == 0x38:  # GS 8 L p1..p4: graphics with a 4-byte length
            if end - pos < 7:
                return None
            self._skip = int.from_bytes(buf[pos + 3 : pos + 7], "little")
            return 7
        count = _GS_ARGS.get(cmd, 0)
        return 2 + count if end - pos >= 2 + count else None

    def _fs(self, buf: bytearray, pos: int, end: int) -> int | None:
        if end - pos < 2:
            return None
        if buf[pos + 1] == 0x28:
            return self._prefixed(buf, pos, end)
        count = _FS_ARGS.get(buf[pos + 1], 0)
        return 2 + count if end - pos >= 2 + count else None

    def _dle(self, buf: bytearray, pos: int, end: int) -> int | None:
        if end - pos < 3:
            return None
        cmd, n = buf[pos + 1], buf[pos + 2]
        if cmd == 0x04:  # DLE EOT n: real-time status
            if n in (7, 8):  # ink and paper status of some models carry one more byte
                return 4 if end - pos >= 4 else None
            if 1 <= n <= 4:
                self._out.append(StatusRequest(n))
            return 3
        if cmd == 0x05:  # DLE ENQ n: real-time request to the printer
            return 3
        if cmd == 0x14:  # DLE DC4 fn ...: real-time pulse (fn 1), power off, clear buffer
            count = 3 + _DC4_ARGS.get(n, 0)
            if end - pos < count:
                return None
            if n == 1 and buf[pos + 3] in (0, 1):
                self._kick(2 if buf[pos + 3] == 0 else 5, buf[pos + 4] * 100)
            return count
        return 1  # a lone DLE means nothing

    def _prefixed(self, buf: bytearray, pos: int, end: int) -> int | None:
        """GS/FS/ESC ( fn pL pH [cn fn' ...]: every such command carries its own length."""
        if end - pos < 5:
            return None
        family, size = buf[pos] + buf[pos + 2] * 256, buf[pos + 3] + 256 * buf[pos + 4]
        body = buf[pos + 5 : pos + 5 + size]
        if family == GS + 0x6B * 256 and size >= 2:  # GS ( k: 2D codes
            if len(body) < size:
                return None
            if body[0] == 0x31 and body[1] == 0x50:  # QR, store the data (after m)
                self._qr_data = bytes(body[3:]).decode("utf-8", errors="replace")
            elif body[0] == 0x31 and body[1] == 0x51 and self._qr_data:  # QR, print
                self._end_line(force=False)
                self._blocks.append(Block("qr", self._qr_data, self._style))
            return 5 + size
        if family == GS + 0x4C * 256 and size >= 2:  # GS ( L: graphics
            if len(body) < 2:
                return None
            if body[1] in (2, 50):  # print the stored graphics
                self._image()
        self._skip = size
        return 5

    def _barcode(self, buf: bytearray, pos: int, end: int, kind: int) -> int | None:
        if kind <= 6:  # function A: data up to NUL
            used = _until_nul(buf, pos + 3, end, pos)
            if used is None or used == 3:
                return used
            data = bytes(buf[pos + 3 : pos + used - 1])
        else:  # function B: a length byte, then the data
            if end - pos < 4:
                return None
            used = 4 + buf[pos + 3]
            if end - pos < used:
                return None
            data = bytes(buf[pos + 4 : pos + used])
        text = data.decode("latin-1")
        if kind in (73, 74):  # CODE128: "{A".."{C" pick a code set, "{{" is a brace
            text = re.sub(r"\{([A-C{S1-4])", lambda m: "{" if m[1] == "{" else "", text)
        self._end_line(force=False)
        self._blocks.append(Block("barcode", text, self._style))
        return used

    # -- what the paper shows ------------------------------------------------------------

    def _text(self, text: str) -> None:
        if self._line_style is None:
            self._line_style = self._style
        self._line.append(text)

    def _end_line(self, *, force: bool) -> None:
        """LF prints the line (even an empty one); a barcode or cut prints pending text."""
        if self._line or force:
            style = self._line_style or self._style
            self._blocks.append(Block("text", "".join(self._line), style))
        self._line, self._line_style = [], None

    def _image(self) -> None:
        self._end_line(force=False)
        if not self._blocks or self._blocks[-1].kind != "image":
            self._blocks.append(Block("image", "", self._style))

    def _kick(self, pin: int, on_ms: int) -> None:
        self._kicks.append((pin, on_ms))
        self._out.append(Kick(pin, on_ms))

    def _cut(self) -> None:
        self._end_line(force=False)
        while self._blocks and self._blocks[-1] == Block("text", "", self._blocks[-1].style):
            self._blocks.pop()  # the feed before the cut is paper, not content
        self._out.append(self._job(cuts=1, raw=b""))  # feed() fills in raw with the cut
        self._blocks, self._kicks = [], []

    def _job(self, cuts: int, raw: bytes) -> PrintedJob:
        blocks = list(self._blocks)
        return PrintedJob(
            lines=[b.text for b in blocks if b.kind == "text"],
            barcodes=[b.text for b in blocks if b.kind == "barcode"],
            qr=[b.text for b in blocks if b.kind == "qr"],
            cuts=cuts,
            kicks=list(self._kicks),
            raw=raw,
            blocks=blocks,
        )


def _until_nul(buf: bytearray, start: int, end: int, pos: int) -> int | None:
    """Length of a command from `pos` through the NUL at or after `start`; garbage: header."""
    limit = min(end, start + _MAX_NUL_TERMINATED)
    nul = buf.find(NUL, start, limit)
    if nul >= 0:
        return nul + 1 - pos
    if end < start + _MAX_NUL_TERMINATED:
        return None
    return start - pos  # no NUL in sight: step over the header, print the rest as text


def _user_chars(buf: bytearray, pos: int, end: int) -> int | None:
    """ESC & y c1 c2, then per character x and y*x bytes."""
    if end - pos < 5:
        return None
    y, first, last = buf[pos + 2], buf[pos + 3], buf[pos + 4]
    at = pos + 5
    for _ in range(max(0, last - first + 1)):
        if at >= end:
            return None
        at += 1 + y * buf[at]
    return at - pos if at <= end else None


def parse(data: bytes) -> list[PrintedJob]:
    """Every job in `data`, plus what was printed after the last cut (with cuts=0)."""
    parser = EscposParser()
    jobs = [out for out in parser.feed(data) if isinstance(out, PrintedJob)]
    if (rest := parser.unfinished()) is not None:
        jobs.append(rest)
    return jobs
