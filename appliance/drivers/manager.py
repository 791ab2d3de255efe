"""DeviceManager: every configured device built, opened, watched and closed as one.

A device that cannot be built or opened is reported offline and the rest carry on:
a broken printer must never keep the till from selling. The manager also keeps a
JSON snapshot of every device's health next to the database, so `appliance status`
(another process) can show it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from appliance.core.closing import Closing
from appliance.core.devices import (
    CardReader,
    CashDrawer,
    DeviceHealth,
    DeviceHealthChanged,
    DeviceKind,
    ReceiptPrinter,
)
from appliance.core.events import EventBus
from appliance.core.help_calls import AttendantLight
from appliance.core.payment import PaymentTerminal
from appliance.core.scale import Scale
from appliance.device_settings import HardwareSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.registry import BUILD_ORDER, KINDS, adapter_for, kind_of

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "devices.json"


def snapshot_path_for(database_path: str | Path) -> Path:
    """Where the device health snapshot lives: beside the database."""
    return Path(database_path).parent / SNAPSHOT_NAME


class UnavailableDevice(DeviceBase):
    """Stands in for a device whose adapter could not be built; always offline."""

    def __init__(
        self, name: str, kind: DeviceKind, address: str, reason: str, role: str = ""
    ) -> None:
        self.kind = kind
        super().__init__(name, address)
        self._reason = reason
        self.role = role  # a scale's role, so a broken bagging scale is never the checkout's

    def _start(self) -> None:
        self._set_health("offline", self._reason)

    def _stop(self) -> None:
        pass


class DeviceManager(Closing):
    """Owns the devices: open_all()/close_all() on the main thread; health() from any thread."""

    def __init__(
        self,
        devices: Mapping[str, DeviceBase],
        *,
        snapshot_path: Path | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._devices = dict(devices)  # in build order: dependencies first
        self._snapshot_path = snapshot_path
        self._snapshot_failing = False
        self._wall_clock = wall_clock
        self._failed: dict[str, DeviceHealth] = {}
        self._opened: list[DeviceBase] = []
        self._bus: EventBus | None = None
        # Guards the device table: open_late() may add a device from a start-up thread.
        self._lock = threading.RLock()

    @classmethod
    def build(
        cls,
        settings: Mapping[str, HardwareSettings],
        *,
        overrides: Mapping[str, DeviceBase] | None = None,
        snapshot_path: Path | None = None,
    ) -> DeviceManager:
        """Build every configured device; `overrides` are pre-built adapters used as they are.

        Overrides let simulate mode hand an adapter extra constructor arguments (a mock
        pin factory) without changing the registry. A device whose adapter fails to build
        becomes an UnavailableDevice, reported offline with the reason.
        """
        overrides = overrides or {}
        ordered = sorted(settings.items(), key=lambda item: kind_of(item[1]) not in BUILD_ORDER)
        built: dict[str, DeviceBase] = {}
        for name, table in ordered:
            built[name] = overrides[name] if name in overrides else _build_one(name, table, built)
        for name, device in overrides.items():
            built.setdefault(name, device)
        return cls(built, snapshot_path=snapshot_path)

    def __iter__(self) -> Iterator[DeviceBase]:
        return iter(self._all())

    def __len__(self) -> int:
        with self._lock:
            return len(self._devices)

    def __getitem__(self, name: str) -> DeviceBase:
        with self._lock:
            return self._devices[name]

    def close(self) -> None:
        """The same as close_all(); what the end of a `with` block calls."""
        self.close_all()

    def open_all(self, bus: EventBus) -> None:
        """Open every device in build order; one that fails is reported offline, never raised.

        Call on the main thread: it subscribes the health snapshot to the bus.
        """
        if self._bus is None:
            self._bus = bus
            bus.subscribe(DeviceHealthChanged, self._health_changed)
        for device in self._all():
            self._open_one(device, bus)
        self.write_snapshot()

    def open_late(self, name: str, table: HardwareSettings) -> DeviceBase:
        """Build and open one more device after open_all(); callable from any thread.

        For devices that are slow to start (nfcpy), so they need not hold up READY=1.
        """
        with self._lock:
            bus = self._bus
            if bus is None:
                raise RuntimeError("open_late() before open_all()")
            if name in self._devices:
                raise ValueError(f"a device named {name!r} exists already")
            built = dict(self._devices)
        device = _build_one(name, table, built)  # slow imports happen here, outside the lock
        with self._lock:
            if name in self._devices:
                raise ValueError(f"a device named {name!r} exists already")
            self._devices[name] = device
        self._open_one(device, bus)
        return device

    def _open_one(self, device: DeviceBase, bus: EventBus) -> None:
        with self._lock:
            if device in self._opened:
                return
            self._opened.append(device)
        try:
            device.open(bus)
        except Exception as err:
            health = DeviceHealth(
                device.name, device.kind, "offline", f"failed to open: {err}", device.address
            )
            with self._lock:
                self._failed[device.name] = health
            log.warning("%s %s failed to open: %s", device.kind, device.name, err)
            bus.post(DeviceHealthChanged(health))

    def close_all(self) -> None:
        """Close every opened device, last opened first; safe to call twice."""
        while True:
            with self._lock:
                if not self._opened:
                    break
                device = self._opened.pop()
            try:
                device.close()
            except Exception:
                log.exception("%s %s failed to close", device.kind, device.name)
        self.write_snapshot()

    def health(self) -> list[DeviceHealth]:
        """Every device's latest health, in build order."""
        with self._lock:
            failed = dict(self._failed)
        return [failed.get(d.name) or d.health for d in self._all()]

    def of_kind(self, kind: DeviceKind) -> list[DeviceBase]:
        """The devices of one port family, in build order."""
        return [d for d in self._all() if d.kind == kind]

    @property
    def printer(self) -> ReceiptPrinter | None:
        """The first receipt printer, if any."""
        return cast(ReceiptPrinter | None, _first(self.of_kind("printer")))

    @property
    def drawer(self) -> CashDrawer | None:
        """The first cash drawer, if any."""
        return cast(CashDrawer | None, _first(self.of_kind("drawer")))

    @property
    def terminal(self) -> PaymentTerminal | None:
        """The first payment terminal, if any."""
        return cast(PaymentTerminal | None, _first(self.of_kind("payment_terminal")))

    @property
    def scale(self) -> Scale | None:
        """The first checkout scale (goods sold by weight are weighed on it), if any."""
        return cast(Scale | None, _first(self._scales("checkout")))

    @property
    def bagging_scale(self) -> Scale | None:
        """The scale under the bagging area, if any."""
        return cast(Scale | None, _first(self._scales("bagging")))

    def _scales(self, role: str) -> list[DeviceBase]:
        # A scale says its role ("checkout" unless configured otherwise).
        return [d for d in self.of_kind("scale") if (getattr(d, "role", "") or "checkout") == role]

    @property
    def attendant_light(self) -> AttendantLight | None:
        """The first attendant light, if any."""
        return cast(AttendantLight | None, _first(self.of_kind("attendant_light")))

    @property
    def scanners(self) -> list[DeviceBase]:
        """Every barcode scanner (they post BarcodeScanned; nothing to call)."""
        return self.of_kind("scanner")

    @property
    def card_readers(self) -> list[CardReader]:
        """Every NFC reader (they post CardTapped; nothing to call)."""
        return cast(list[CardReader], self.of_kind("card_reader"))

    def write_snapshot(self) -> None:
        """Write every device's health to the snapshot file, atomically; failures are logged."""
        if self._snapshot_path is None:
            return
        try:
            write_snapshot(self._snapshot_path, self.health(), self._wall_clock())
        except OSError as err:
            if not self._snapshot_failing:  # once per outage, not once per health change
                log.warning("cannot write the device snapshot %s: %s", self._snapshot_path, err)
            self._snapshot_failing = True
            return
        if self._snapshot_failing:
            log.info("the device snapshot %s is written again", self._snapshot_path)
        self._snapshot_failing = False

    def _all(self) -> list[DeviceBase]:
        with self._lock:
            return list(self._devices.values())

    def _health_changed(self, event: DeviceHealthChanged) -> None:
        with self._lock:
            failed = self._failed.get(event.health.device)
            if failed is not None and event.health is not failed and event.health.state == "ok":
                # The device recovered on its own (a reconnecting worker): trust it again.
                del self._failed[event.health.device]
        self.write_snapshot()


def write_snapshot(path: Path, health: list[DeviceHealth], written_at: float) -> None:
    """Write a device health snapshot atomically (temp file + rename)."""
    data = {
        "written_at": written_at,
        "pid": os.getpid(),
        "devices": [_health_json(h) for h in health],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # No fsync: a snapshot lost in a power cut is rewritten at the next start; the rename
    # alone guarantees a reader never sees half a file.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_snapshot(path: Path, now: float | None = None) -> dict[str, Any] | None:
    """The snapshot with its age in seconds, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        written_at = float(data["written_at"])
        devices = [dict(d) for d in data["devices"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        if not isinstance(err, FileNotFoundError):
            log.warning("ignoring unreadable device snapshot %s: %s", path, err)
        return None
    now = time.time() if now is None else now
    return {
        "written_at": written_at,
        "age_seconds": round(max(0.0, now - written_at), 1),
        "pid": data.get("pid"),
        "devices": devices,
    }


def _build_one(name: str, table: HardwareSettings, built: Mapping[str, DeviceBase]) -> DeviceBase:
    """The adapter for one table; an UnavailableDevice when it cannot be built."""
    kind = kind_of(table)
    try:
        return adapter_for(kind).from_settings(name, table, built)
    except Exception as err:  # a missing library or a bad port: that device only
        log.error("device %s (%s) cannot be built: %s", name, kind, err)
        address = str(getattr(table, "address", "") or _address_of(table))
        role = str(getattr(table, "role", ""))
        reason = f"cannot be built: {err}"
        return UnavailableDevice(name, KINDS[kind].family, address, reason, role)


def _health_json(health: DeviceHealth) -> dict[str, str]:
    return {
        "device": health.device,
        "kind": health.kind,
        "state": health.state,
        "reason": health.reason,
        "address": health.address,
    }


def _address_of(table: HardwareSettings) -> str:
    for key in ("port", "device", "path", "pin", "printer"):
        value = getattr(table, key, None)
        if value not in (None, ""):
            return str(value)
    return ""


def _first(devices: list[DeviceBase]) -> DeviceBase | None:
    return devices[0] if devices else None
