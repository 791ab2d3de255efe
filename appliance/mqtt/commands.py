"""Fleet commands on the device: checked, then run one at a time with a job lifecycle.

A command arrives signed by the fleet key. CommandHandler.handle() checks it on the
caller's thread (signature, target device, expiry, replay, open sale) and answers
REJECTED or TIMED_OUT at once, or QUEUED; its worker thread then publishes IN_PROGRESS
and SUCCEEDED or FAILED (with the reason). The seen command ids are durable, so a
command redelivered after a restart (a QoS1 retry, a replay by an attacker) never runs
twice: a reboot command must not reboot the kiosk in a loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from peewee import SqliteDatabase

from appliance.core.clock import Clock
from appliance.core.devices import CashDrawer, DrawerOpening, ReceiptPrinter
from appliance.core.events import Event, EventBus, KioskLockChanged
from appliance.errors import ConfigError, DeviceError
from appliance.mqtt import topics
from appliance.mqtt.dispatch import Dispatcher
from appliance.mqtt.payloads import (
    Command,
    CommandName,
    CommandUpdate,
    JobState,
    LogKind,
    LogLines,
    decode,
)
from appliance.mqtt.signing import CommandSignatureError, verify_command

if TYPE_CHECKING:
    from appliance.mqtt.config_sync import ConfigSync

log = logging.getLogger(__name__)

Action = Callable[[dict[str, Any]], str]
"""Runs a command with its args (plus "command_id"); returns a short result, raises on failure."""

TERMINAL_STATES: frozenset[JobState] = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT"})
# These would interrupt a customer mid-sale (a locked screen, a reboot, prices or
# settings changing under the cart), so they wait for the hub to retry after the sale.
BLOCKED_DURING_SALE: frozenset[CommandName] = frozenset(
    {"lock", "reboot", "reload_catalog", "set_config"}
)
# Seen ids are kept this long past their expiry: a Pi without an RTC can boot with a
# clock days behind, and then an expired command must still count as replayed.
SEEN_RETENTION = timedelta(days=7)
MAX_REASON = 500  # characters of an action's result or error sent to the hub
REBOOT_COMMAND = ("systemctl", "reboot")
DEFAULT_LOG_LINES = 200
MAX_LOG_LINES = 5000  # one logs_up message; a few hundred kB at most
RING_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SeenCommands(Protocol):
    """Durable set of command ids already accepted; thread-safe as far as its store is."""

    def remember(self, command_id: str, expires_at: datetime) -> bool:
        """Record `command_id`; True when it was new, False when it was seen before."""
        ...


class SqliteSeenCommands:
    """Seen command ids in the appliance database (table `command_seen`, created if missing)."""

    def __init__(self, db: SqliteDatabase, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._db.execute_sql(
            "CREATE TABLE IF NOT EXISTS command_seen ("
            " id TEXT PRIMARY KEY, expires_at TEXT NOT NULL, seen_at TEXT NOT NULL"
            ") WITHOUT ROWID"
        )

    def remember(self, command_id: str, expires_at: datetime) -> bool:
        """Insert the id in its own transaction, dropping ids long past their expiry."""
        now = self._clock.now().astimezone(UTC)
        with self._db.atomic("IMMEDIATE"):
            # UTC ISO strings of one format compare in time order, so SQLite can prune.
            self._db.execute_sql(
                "DELETE FROM command_seen WHERE expires_at < ?",
                ((now - SEEN_RETENTION).isoformat(),),
            )
            cursor = self._db.execute_sql(
                "INSERT OR IGNORE INTO command_seen (id, expires_at, seen_at) VALUES (?, ?, ?)",
                (command_id, expires_at.astimezone(UTC).isoformat(), now.isoformat()),
            )
            return int(cursor.rowcount) == 1

    def __contains__(self, command_id: object) -> bool:
        """Whether an id is remembered."""
        row = self._db.execute_sql("SELECT 1 FROM command_seen WHERE id = ?", (command_id,))
        return row.fetchone() is not None


@dataclass(frozen=True, slots=True)
class CommandReceived(Event):
    """A command message decoded on paho's thread, for the main loop to check and queue."""

    command: Command


class CommandHandler:
    """Checks fleet commands and runs accepted ones in order on its own worker thread.

    `handle()` is called from one thread (the main loop; `route` arranges that);
    `publish_update` is called from it and from the worker, so it must be thread-safe.
    """

    def __init__(
        self,
        device_id: str,
        fleet_public_key: Ed25519PublicKey,
        *,
        publish_update: Callable[[CommandUpdate], None],
        is_sale_open: Callable[[], bool],
        actions: Mapping[CommandName, Action],
        clock: Clock,
        seen_store: SeenCommands,
    ) -> None:
        self._device_id = device_id
        self._key = fleet_public_key
        self._publish_update = publish_update
        self._is_sale_open = is_sale_open
        self._actions = dict(actions)
        self._clock = clock
        self._seen = seen_store
        self._jobs: queue.SimpleQueue[tuple[Command, datetime] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Start the worker that runs queued commands; safe twice."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fleet-commands", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Let the running command finish, then stop the worker; safe twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def route(self, dispatcher: Dispatcher, bus: EventBus) -> None:
        """Take commands from the dispatcher (paho's thread) through the bus to `handle`."""
        dispatcher.on(topics.command(self._device_id), lambda c: bus.post(CommandReceived(c)))
        bus.subscribe(CommandReceived, self._received)

    def _received(self, event: CommandReceived) -> None:
        self.handle(event.command)

    def on_message(self, data: bytes) -> JobState:
        """Decode and handle a command message; payloads.DecodeError when it is malformed."""
        return self.handle(decode(data, Command))

    def handle(self, command: Command) -> JobState:
        """Check a command and queue it; returns the state published (QUEUED or a final one)."""
        try:
            verify_command(command, self._key)
        except CommandSignatureError as err:
            return self._refuse(command, "REJECTED", str(err))
        if command.device != self._device_id:
            return self._refuse(command, "REJECTED", f"meant for device {command.device!r}")
        try:
            expires_at = _parse_time(command.expires_at)
        except ValueError:
            return self._refuse(command, "REJECTED", f"bad expires_at {command.expires_at!r}")
        if self._clock.now() >= expires_at:
            return self._refuse(command, "TIMED_OUT", f"expired at {command.expires_at}")
        try:
            fresh = self._seen.remember(command.id, expires_at)
        except Exception as err:
            # Unrecorded, a redelivery could run it twice: refuse it; the hub may send anew.
            log.exception("cannot record command %s", command.id)
            return self._refuse(command, "REJECTED", f"cannot record the command id: {err}")
        if not fresh:
            return self._refuse(command, "REJECTED", "replayed")
        if command.name not in self._actions:
            return self._refuse(command, "REJECTED", f"{command.name} is not supported here")
        if command.name in BLOCKED_DURING_SALE and self._is_sale_open():
            return self._refuse(command, "REJECTED", "a sale is open")
        log.info("command %s (%s) queued", command.id, command.name)
        self._update(command, "QUEUED")
        self._jobs.put((command, expires_at))
        return "QUEUED"

    def _refuse(self, command: Command, state: JobState, reason: str) -> JobState:
        log.warning("command %s (%s) %s: %s", command.id, command.name, state, reason)
        self._update(command, state, reason)
        return state

    def _update(self, command: Command, state: JobState, reason: str = "") -> None:
        try:
            self._publish_update(CommandUpdate(id=command.id, state=state, reason=reason))
        except Exception:
            # The hub learns the state on its next retry at worst; the command itself stands.
            log.exception("could not publish %s for command %s", state, command.id)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            command, expires_at = job
            if self._clock.now() >= expires_at:
                # It waited behind slower commands past its expiry: too late to act on it.
                self._refuse(command, "TIMED_OUT", f"expired at {command.expires_at}")
                continue
            self._update(command, "IN_PROGRESS")
            try:
                result = self._actions[command.name]({**command.args, "command_id": command.id})
            except Exception as err:
                log.warning("command %s (%s) failed: %s", command.id, command.name, err)
                self._update(command, "FAILED", (str(err) or type(err).__name__)[:MAX_REASON])
                continue
            log.info("command %s (%s) succeeded: %s", command.id, command.name, result)
            self._update(command, "SUCCEEDED", str(result)[:MAX_REASON])


def _parse_time(text: str) -> datetime:
    """An ISO 8601 time with its offset; a naive time is refused (whose clock would it be?)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


# --- The actions: what each command does on this appliance, injected into the handler.


class KioskLock:
    """The kiosk-locked flag; thread-safe; every change is posted to the bus."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._flag = threading.Event()

    @property
    def locked(self) -> bool:
        """Whether the kiosk refuses to sell."""
        return self._flag.is_set()

    def set(self, locked: bool, command_id: str = "") -> None:
        """Lock or unlock, and tell the main loop (the screen shows it)."""
        if locked:
            self._flag.set()
        else:
            self._flag.clear()
        self._bus.post(KioskLockChanged(locked, command_id))


def standard_actions(
    *,
    lock: KioskLock,
    request_snapshot: Callable[[], None],
    printer: ReceiptPrinter | None,
    drawer: CashDrawer | None,
    config: ConfigSync,
    logs: LogCollector,
    run: Callable[[Sequence[str]], None],
) -> dict[CommandName, Action]:
    """Every command wired to the appliance's parts; `run` executes a system command."""

    def set_lock(locked: bool) -> Action:
        def action(args: dict[str, Any]) -> str:
            lock.set(locked, str(args.get("command_id", "")))
            return "locked" if locked else "unlocked"

        return action

    def reload_catalog(_args: dict[str, Any]) -> str:
        request_snapshot()
        return "catalog snapshot requested"

    def print_test_page(_args: dict[str, Any]) -> str:
        if printer is None:
            raise DeviceError("no receipt printer is configured")
        printer.print_test_page()
        return f"test page printed on {printer.name}"

    def open_drawer(args: dict[str, Any]) -> str:
        if drawer is None:
            raise DeviceError("no cash drawer is configured")
        drawer.kick(DrawerOpening("remote", reference=str(args.get("command_id", ""))))
        return f"{drawer.name} opened"

    def set_config(args: dict[str, Any]) -> str:
        desired = args.get("config")
        version = args.get("version")
        if not isinstance(desired, dict) or not isinstance(version, int | None):
            raise ConfigError("args: expected config (a table) and an optional integer version")
        reported = config.apply(desired, version)
        if reported.rejected_version is not None:
            raise ConfigError("; ".join(reported.errors))
        return f"configuration version {reported.version} written"

    def reboot(_args: dict[str, Any]) -> str:
        run(REBOOT_COMMAND)
        return "reboot requested"

    return {
        "lock": set_lock(True),
        "unlock": set_lock(False),
        "reload_catalog": reload_catalog,
        "print_test_page": print_test_page,
        "open_drawer": open_drawer,
        "set_config": set_config,
        "collect_logs": logs.collect,
        "reboot": reboot,
    }


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
        """Publish the last `args["lines"]` lines (default 200, at most MAX_LOG_LINES)."""
        count = args.get("lines", DEFAULT_LOG_LINES)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_LOG_LINES:
            raise ValueError(f"lines: expected a whole number from 1 to {MAX_LOG_LINES}")
        lines = self._source.tail(count)
        self._publish(
            LogLines(
                device=self._device_id,
                command_id=str(args.get("command_id", "")),
                source=self._source.kind,
                lines=lines,
            )
        )
        return f"{len(lines)} lines sent from the {self._source.kind}"
