"""What both scanners do to a line before it becomes a scan: validate, strip, debounce."""

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
    """The same code again inside the debounce window: dropped."""

    code: str


Verdict = Accepted | Rejected | Repeated


def quote(raw: bytes | str) -> str:
    """A short printable rendering of a bad line for a rejection reason."""
    if len(raw) <= QUOTE_LIMIT:
        return repr(raw)
    return f"{raw[:QUOTE_LIMIT]!r}... ({len(raw)} long)"


def _is_printable_ascii(char: str) -> bool:
    return " " <= char <= "~"


class ScanFilter:
    """Turns one line from a scanner into a Verdict. Not thread-safe: one per reader thread.

    A line is rejected when it is empty, longer than `max_length`, not printable ASCII, or
    lacks the configured prefix or suffix. Identical codes closer together than
    `debounce_ms` (measured from the previous sighting, so a code held under a
    presentation scanner stays one scan) are reported as Repeated. `clock` returns
    monotonic seconds.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        suffix: str = "",
        max_length: int = 128,
        debounce_ms: int = 800,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.max_length = max_length
        self._window = debounce_ms / 1000
        self._clock = clock
        self._last_code: str | None = None
        self._last_seen = 0.0

    def check(self, raw: bytes | str) -> Verdict:
        """Validate one line (without its terminator) and debounce it."""
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
        return self._debounce(code)

    def _debounce(self, code: str) -> Verdict:
        now = self._clock()
        repeated = code == self._last_code and now - self._last_seen < self._window
        self._last_code = code
        self._last_seen = now
        return Repeated(code) if repeated else Accepted(code)
