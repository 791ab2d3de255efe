"""Health telemetry: what the fleet admin sees about one appliance, sent on an interval.

`TelemetryBuilder` gathers the figures (outbox depth, sales the hub rejected and held in
quarantine, catalog store and version, firmware, free disk, CPU temperature, uptime,
device health, malformed messages, offline card payments and their limits, stored-value
debits the hub has not answered, the fiscal journal's head and check, whether a fleet
command locked the kiosk, the bagging check's counts); `TelemetryPublisher`
sends them QoS 0 with a message expiry (stale health is worse than none) from its own
timer thread while the link is up, and at once after the events it is told to `nudge_on`.
Device health arrives on the main loop (DeviceHealthChanged); `DeviceHealthBoard` hands
the latest of each to that thread.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from datetime import UTC
from pathlib import Path

from appliance import __version__
from appliance.core.clock import Clock, SystemClock
from appliance.core.closing import Closing
from appliance.core.devices import DeviceHealth, DeviceHealthChanged
from appliance.core.events import Event, EventBus
from appliance.core.offline_limits import OfflineLimits, OfflineUsageLike, offline_block
from appliance.core.storage import StorageStatus
from appliance.errors import ApplianceError
from appliance.mqtt import topics
from appliance.mqtt.link import HubLink, LinkState
from appliance.mqtt.payloads import (
    BaggingReport,
    DeviceHealthReport,
    JournalReport,
    OfflineCardsReport,
    StorageReport,
    StoredValueReport,
    Telemetry,
    encode,
)
from appliance.store.card_debits import CardDebitStore
from appliance.store.catalog_versions import CatalogVersions
from appliance.store.journal import FiscalJournal
from appliance.store.journal_outbox import JournalOutbox
from appliance.store.outbox import SalesOutbox

log = logging.getLogger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
INTERVAL_S = 60.0
# Proving the whole chain reads every entry: at start, then this often (not every report).
JOURNAL_CHECK_S = 3600.0
EXPIRY_S = 300  # MQTT v5 message expiry: the broker drops health older than this


class DeviceHealthBoard:
    """The latest health of each device; `update` on the main loop, `snapshot` anywhere."""

    def __init__(self, initial: Iterable[DeviceHealth] = ()) -> None:
        self._lock = threading.Lock()
        self._latest = {h.device: h for h in initial}

    def update(self, health: DeviceHealth) -> None:
        """Record a device's new health."""
        with self._lock:
            self._latest[health.device] = health

    def changed(self, event: DeviceHealthChanged) -> None:
        """EventBus handler for DeviceHealthChanged."""
        self.update(event.health)

    def snapshot(self) -> tuple[DeviceHealth, ...]:
        """Every device's latest health, by device name."""
        with self._lock:
            return tuple(self._latest[name] for name in sorted(self._latest))


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature in °C (the kernel writes millidegrees), None without a sensor."""
    try:
        return int(path.read_text().strip()) / 1000
    except (OSError, ValueError):
        return None


def free_disk(folder: Path) -> int:
    """Bytes free on the file system holding `folder` (the data partition); 0 if unknown."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


class OfflineCards:
    """Offline card payments for telemetry: the journal's usage read on the caller's thread."""

    def __init__(
        self,
        usage: Callable[[], OfflineUsageLike],
        limits: OfflineLimits,
        currency: str,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._usage = usage
        self._limits = limits
        self._currency = currency
        self._clock = clock or SystemClock()

    def report(self) -> OfflineCardsReport | None:
        """The usage, its limits and whether they keep card off; None if it cannot be read."""
        try:
            usage = self._usage()
        except ApplianceError as err:
            log.error("offline card payments not read for telemetry: %s", err)
            return None
        now = self._clock.now()
        limits = self._limits
        oldest = usage.oldest
        return OfflineCardsReport(
            count=usage.count,
            amount=usage.amount,
            currency=self._currency,
            oldest_age_s=round((now - oldest).total_seconds(), 3) if oldest else None,
            max_per_payment=limits.max_per_payment,
            max_total=limits.max_total,
            max_age_s=limits.max_age.total_seconds(),
            blocked=offline_block(usage, limits, now),
        )


class StoredValueWaiting:
    """Stored-value debits and voids the hub has not answered, for telemetry; caller's thread."""

    def __init__(
        self, debits: CardDebitStore, currency: str, *, clock: Clock | None = None
    ) -> None:
        self._debits = debits
        self._currency = currency
        self._clock = clock or SystemClock()

    def report(self) -> StoredValueReport | None:
        """Counted and summed, with the oldest one's wait; None if they cannot be read."""
        try:
            waiting = self._debits.waiting()
        except ApplianceError as err:
            log.error("stored-value debits not read for telemetry: %s", err)
            return None
        oldest = waiting.oldest
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)  # written as UTC
        return StoredValueReport(
            debits=waiting.debits,
            debit_amount=waiting.debit_amount,
            voids=waiting.voids,
            void_amount=waiting.void_amount,
            currency=self._currency,
            oldest_age_s=round(max(0.0, (self._clock.now() - oldest).total_seconds()), 3)
            if oldest
            else None,
        )


class JournalHealth:
    """The journal's head, the hub's acknowledgement and the last whole-chain check.

    Runs on the telemetry thread with its own peewee connection. The check is repeated
    every `check_every_s`; between checks the last result is reported with its time.
    """

    def __init__(
        self,
        journal: FiscalJournal,
        outbox: JournalOutbox,
        *,
        clock: Clock | None = None,
        check_every_s: float = JOURNAL_CHECK_S,
    ) -> None:
        self._journal = journal
        self._outbox = outbox
        self._clock = clock or SystemClock()
        self._every = check_every_s
        self._checked: tuple[float, str, int | None, str] | None = None

    def report(self) -> JournalReport | None:
        """The journal as of now; None when it cannot be read."""
        try:
            head, acked = self._outbox.head(), self._outbox.acked_upto()
            if self._checked is None or self._clock.monotonic() - self._checked[0] >= self._every:
                check = self._journal.verify()
                problem = check.problem
                self._checked = (
                    self._clock.monotonic(),
                    self._clock.now().isoformat(),
                    problem.number if problem else None,
                    problem.reason if problem else "",
                )
                if problem:
                    log.error(
                        "fiscal journal broken at entry %d: %s", problem.number, problem.reason
                    )
        except Exception as err:
            log.warning("telemetry: the fiscal journal not read: %s", err)
            return None
        _, checked_at, broken_at, reason = self._checked
        return JournalReport(
            head=head, acked_upto=acked, checked_at=checked_at, broken_at=broken_at, problem=reason
        )


class TelemetryBuilder:
    """Builds one Telemetry payload; any thread (each reads through its own peewee connection)."""

    def __init__(
        self,
        device_id: str,
        outbox: SalesOutbox,
        catalog_version: Callable[[], int],
        *,
        data_dir: Path,
        malformed: Callable[[], int] = lambda: 0,
        offline_cards: Callable[[], OfflineCardsReport | None] = lambda: None,
        storage: Callable[[], StorageStatus] | None = None,
        journal: Callable[[], JournalReport | None] = lambda: None,
        catalog_store: Callable[[], str] | None = None,
        locked: Callable[[], bool] = lambda: False,
        bagging: Callable[[], BaggingReport | None] = lambda: None,
        stored_value: Callable[[], StoredValueReport | None] = lambda: None,
        clock: Clock | None = None,
        thermal_zone: Path = THERMAL_ZONE,
        firmware: str = __version__,
        image_version: str = "",
    ) -> None:
        self._device = device_id
        self._outbox = outbox
        self._catalog_version = catalog_version
        self._data_dir = data_dir
        self._malformed = malformed
        self._offline_cards = offline_cards
        self._storage = storage
        self._journal = journal
        self._catalog_store = catalog_store or CatalogVersions(outbox.db).store
        self._locked = locked
        self._bagging = bagging
        self._stored_value = stored_value
        self._last_figures: dict[str, int] = {}  # what was read last, sent while reads fail
        self._last_store = ""
        self._clock = clock or SystemClock()
        self._thermal = thermal_zone
        self._firmware = firmware
        self._image_version = image_version
        self._started = self._clock.monotonic()

    def build(self, devices: Iterable[DeviceHealth] = ()) -> Telemetry:
        """The figures as of now."""
        return Telemetry(
            device=self._device,
            at=self._clock.now().isoformat(),
            firmware=self._firmware,
            uptime_s=round(self._clock.monotonic() - self._started, 3),
            outbox_depth=self._figure("outbox_depth", self._outbox.depth),
            catalog_version=self._figure("catalog_version", self._catalog_version),
            disk_free_bytes=free_disk(self._data_dir),
            cpu_temp_c=cpu_temperature(self._thermal),
            malformed_messages=self._malformed(),
            devices=[
                DeviceHealthReport(device=h.device, kind=h.kind, state=h.state, reason=h.reason)
                for h in devices
            ],
            offline_cards=self._offline_cards(),
            storage=self._storage_report(),
            journal=self._journal(),
            quarantined_sales=self._figure("quarantined_sales", self._outbox.quarantine_count),
            catalog_store=self._store(),
            image_version=self._image_version,
            locked=self._locked(),
            bagging=self._bagging(),
            stored_value=self._stored_value(),
        )

    def _figure(self, name: str, read: Callable[[], int]) -> int:
        """A figure read from the database, or the last one read when the disk fails now.

        Health must still reach the hub from a device whose card fails: that is when the
        fleet admin needs it most.
        """
        try:
            value = read()
        except Exception as err:
            log.warning("telemetry: %s not read, sending the last one: %s", name, err)
            return self._last_figures.get(name, 0)
        self._last_figures[name] = value
        return value

    def _store(self) -> str:
        """The held catalog's store; the last one read when the disk fails now."""
        try:
            self._last_store = self._catalog_store()
        except Exception as err:
            log.warning("telemetry: catalog store not read, sending the last one: %s", err)
        return self._last_store

    def _storage_report(self) -> StorageReport | None:
        if self._storage is None:
            return None
        status = self._storage()
        return StorageReport(
            state=status.state,
            free_bytes=status.free_bytes,
            total_bytes=status.total_bytes,
            reserve_bytes=status.reserve_bytes,
            problem="" if status.accepting_sales else status.describe(),
        )


class TelemetryPublisher(Closing):
    """Publishes telemetry every `interval_s` and right after each (re)connect."""

    def __init__(
        self,
        link: HubLink,
        builder: TelemetryBuilder,
        *,
        health: Callable[[], Iterable[DeviceHealth]] = tuple,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self._link = link
        self._builder = builder
        self._health = health
        self._interval = interval_s
        self._topic = topics.health(link.device_id)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = -1
        self._lock = threading.Lock()
        self._sent = 0
        link.watch(self._on_link)

    @property
    def sent(self) -> int:
        """How many telemetry messages were handed to the link."""
        with self._lock:
            return self._sent

    def start(self) -> None:
        """Start the timer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the timer thread; safe twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(timeout)

    def __enter__(self) -> TelemetryPublisher:
        self.start()
        return self

    def nudge(self) -> None:
        """Send fresh telemetry soon, from the timer thread (any thread may call this)."""
        self._wake.set()

    def nudge_on(self, bus: EventBus, *events: type[Event]) -> None:
        """Send fresh telemetry after each of these events, not at the next interval."""
        for event in events:
            bus.subscribe(event, lambda _event: self.nudge())

    def publish_now(self) -> bool:
        """Build and publish once (any thread); False when the link is down."""
        if not self._link.state.connected:
            return False
        payload = encode(self._builder.build(self._health()))
        sent = self._link.publish(self._topic, payload, qos=0, expiry_s=EXPIRY_S)
        if sent:
            with self._lock:
                self._sent += 1
        return sent

    def _on_link(self, state: LinkState) -> None:
        # paho's thread: only signal. A new session deserves fresh health at once.
        if state.connected and state.session != self._session:
            self._session = state.session
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.publish_now()
            except Exception:
                # Telemetry is best effort; a failing figure must not stop the next one.
                log.exception("telemetry not sent")
