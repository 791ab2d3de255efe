"""The collect_logs command: where the appliance's last log lines come from, and sending them.

Under systemd the journal holds them (JournalLogSource); otherwise, and when
systemd-python is missing, the appliance keeps its own last lines in memory (LogRing).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from appliance.mqtt.payloads import LogKind, LogLines

log = logging.getLogger(__name__)

DEFAULT_LOG_LINES = 200
MAX_LOG_LINES = 5000  # one logs_up message; a few hundred kB at most
RING_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogSource(Protocol):
    """Where collect_logs reads from; `tail` is thread-safe."""

    kind: LogKind

    def tail(self, count: int) -> list[str]:
        """The last `count` lines, oldest first."""
        ...


class LogRing(logging.Handler):
    """The appliance's own last log lines, for collect_logs when there is no journal."""

    kind: LogKind = "ring"

    def __init__(self, capacity: int = MAX_LOG_LINES) -> None:
        super().__init__()
        self._lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter(RING_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted record (deque appends are atomic)."""
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)

    def tail(self, count: int) -> list[str]:
        """The last `count` lines, oldest first."""
        lines = list(self._lines)
        return lines[-count:] if count > 0 else []


class JournalLogSource:
    """The appliance's lines in the systemd journal (systemd-python's Reader)."""

    kind: LogKind = "journal"

    def __init__(self, identifier: str = "appliance") -> None:
        self._identifier = identifier

    def tail(self, count: int) -> list[str]:
        """The last `count` journal lines of this syslog identifier, oldest first."""
        from systemd import journal

        lines: list[str] = []
        with journal.Reader() as reader:
            reader.add_match(SYSLOG_IDENTIFIER=self._identifier)
            reader.seek_tail()
            while len(lines) < count and (entry := reader.get_previous()):
                stamp = entry.get("__REALTIME_TIMESTAMP")
                when = stamp.isoformat(timespec="seconds") if stamp else "?"
                lines.append(f"{when} {entry.get('PRIORITY', '')} {entry.get('MESSAGE', '')}")
        lines.reverse()
        return lines


def log_source(ring: LogRing, *, journald: bool) -> LogSource:
    """The journal when the appliance logs to journald and systemd-python loads, else `ring`."""
    if journald:
        try:
            from systemd import journal  # noqa: F401
        except ImportError:
            log.warning("systemd-python is missing; collect_logs sends the in-memory log")
        else:
            return JournalLogSource()
    return ring


class LogCollector:
    """The collect_logs action: reads the last N lines and publishes them on logs_up."""

    def __init__(
        self, device_id: str, source: LogSource, publish: Callable[[LogLines], None]
    ) -> None:
        self._device_id = device_id
        self._source = source
        self._publish = publish

    def collect(self, args: dict[str, Any]) -> str:
        """Publish the last `args["lines"]` lines (default 200, clamped to MAX_LOG_LINES)."""
        asked = args.get("lines", DEFAULT_LOG_LINES)
        if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
            raise ValueError(f"lines: expected a whole number of at least 1, got {asked!r}")
        count = min(asked, MAX_LOG_LINES)
        lines = self._source.tail(count)
        self._publish(
            LogLines(
                device=self._device_id,
                command_id=str(args.get("command_id", "")),
                source=self._source.kind,
                lines=lines,
            )
        )
        sent = f"{len(lines)} lines sent from the {self._source.kind}"
        if asked > count:
            # One message stays within what a broker and the hub take; the admin is told.
            log.warning("collect_logs asked for %d lines; sending the last %d", asked, count)
            return f"{sent} (asked for {asked}, at most {MAX_LOG_LINES})"
        return sent
