"""The fleet actions: what each command does on this appliance, injected into the handler.

CommandHandler (appliance.mqtt.commands) checks a command and runs its action on its
worker thread; an action returns a short result or raises with the reason the hub sees.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from appliance.core.devices import CashDrawer, DrawerOpening, ReceiptPrinter
from appliance.core.events import EventBus, KioskLockChanged
from appliance.errors import ConfigError, DeviceError
from appliance.mqtt.commands import Action
from appliance.mqtt.device_logs import LogCollector
from appliance.mqtt.payloads import CommandName

if TYPE_CHECKING:
    from appliance.mqtt.config_sync import ConfigSync

REBOOT_COMMAND = ("systemctl", "reboot")


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
    update: Action | None = None,
) -> dict[CommandName, Action]:
    """Every command wired to the appliance's parts; `run` executes a system command.

    `update` is the software update's action (appliance.update.updater), when slots are
    configured; it answers later (a deferred result).
    """

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

    actions: dict[CommandName, Action] = {
        "lock": set_lock(True),
        "unlock": set_lock(False),
        "reload_catalog": reload_catalog,
        "print_test_page": print_test_page,
        "open_drawer": open_drawer,
        "set_config": set_config,
        "collect_logs": logs.collect,
        "reboot": reboot,
    }
    if update is not None:
        actions["update"] = update
    return actions
