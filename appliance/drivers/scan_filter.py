"""What both scanners do to a line before it becomes a scan: validate, strip, drop re-reads."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Longest piece of a bad line quoted in a rejection reason: enough for a technician to
# recognise what was sent, short enough for a status screen.
QUOTE_LIMIT = 24


@dataclass(frozen=True, slots=True)
class Accepted:
    """A code to post as BarcodeScanned."""

    code: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that is not a code, with a reason a person can act on."""

    reason: str


@dataclass(frozen=True, slots=True)
class Repeated:
    """A re-read of a code still held in the scanner's field: the same item, dropped."""

    code: str


Verdict = Accepted | Rejected | Repeated


def quote(raw: bytes | str) -> str:
    """A short printable rendering of a bad line for a rejection reason."""
    if len(raw) <= QUOTE_LIMIT:
        return repr(raw)
    return f"{raw[:QUOTE_LIMIT]!r}... ({len(raw)} long)"


def warn_if_old_debounce(device: str, debounce_ms: int | None, hold_gap_ms: int) -> None:
    """Log once, at set-up, that a configuration still names `debounce_ms`."""
    if debounce_ms is not None:
        # Honouring it would keep the rule that dropped a second identical item scanned
        # within it; refusing the configuration would leave the till unable to sell.
        log.warning(
            "scanner %s: debounce_ms = %d is no longer used; a repeat is a re-read only when "
            "it follows the previous read of its code by less than hold_gap_ms = %d",
            device,
            debounce_ms,
            hold_gap_ms,
        )


def _is_printable_ascii(char: str) -> bool:
    return " " <= char <= "~"


class ScanFilter:
    """Turns one line from a scanner into a Verdict. Not thread-safe: one per reader thread.

    A line is rejected when it is empty, longer than `max_length`, not printable ASCII, or
    lacks the configured prefix or suffix.

    A code read again less than `hold_gap_ms` after the previous read of the same code is
    the same presentation, held in the field, and is reported as Repeated; a gap at least
    that long means the item was presented again, and it counts. A presentation scanner
    in continuous mode re-reads a held symbol at its frame rate (10 to 30 reads a second,
    33 to 100 ms apart), so a held code is an unbroken run of short gaps however long it
    is held, while a hand cannot take an item out of the field and bring the next one in
    that fast. Each code keeps its own last read, so two codes in the field at once (a
    multipack's two labels) alternate without either counting twice. `hold_gap_ms = 0`
    counts every read. `clock` returns monotonic seconds.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        suffix: str = "",
        max_length: int = 128,
        hold_gap_ms: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.max_length = max_length
        self._gap_us = hold_gap_ms * 1000
        self._clock = clock
        self._last_read: dict[str, float] = {}  # code -> when it was last read, within the gap

    def check(self, raw: bytes | str) -> Verdict:
        """Validate one line (without its terminator); a held code's re-read is Repeated."""
        if not raw:
            return Rejected("empty line")
        if len(raw) > self.max_length:
            return Rejected(f"line longer than {self.max_length} characters: {quote(raw)}")
        if isinstance(raw, bytes):
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError as err:
                return Rejected(f"not ASCII (byte {err.start}): {quote(raw)}")
        else:
            text = raw
        bad = next((i for i, char in enumerate(text) if not _is_printable_ascii(char)), None)
        if bad is not None:
            return Rejected(f"not printable ASCII (character {bad}): {quote(raw)}")
        if not text.startswith(self.prefix):
            return Rejected(f"missing prefix {self.prefix!r}: {quote(text)}")
        if not text.endswith(self.suffix) or len(text) < len(self.prefix) + len(self.suffix):
            return Rejected(f"missing suffix {self.suffix!r}: {quote(text)}")
        code = text[len(self.prefix) : len(text) - len(self.suffix)]
        if not code:
            return Rejected(f"no code between prefix and suffix: {quote(text)}")
        return self._presentation(code)

    def _presentation(self, code: str) -> Verdict:
        now = self._clock()
        # Measured from the previous read, not the first: a held code keeps re-reading,
        # and only a gap in its reads means it left the field.
        last = self._last_read.get(code)
        held = last is not None and self._within_gap(now - last)
        # Codes not read for a whole gap can only count again: forget them, so the table
        # holds at most what a scanner can read within one gap.
        self._last_read = {c: t for c, t in self._last_read.items() if self._within_gap(now - t)}
        self._last_read[code] = now
        return Repeated(code) if held else Accepted(code)

    def _within_gap(self, seconds: float) -> bool:
        # To the microsecond, so float rounding never decides a gap of exactly the hold gap.
        return round(seconds * 1_000_000) < self._gap_us
