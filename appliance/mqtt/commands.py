"""Fleet commands on the device: checked, then run one at a time with a job lifecycle.

A command arrives signed by the fleet key. CommandHandler.handle() checks it on the
caller's thread (signature, target device, expiry, replay, open sale, `held`) and answers
REJECTED or TIMED_OUT at once, or QUEUED; its worker thread then publishes IN_PROGRESS
and SUCCEEDED or FAILED (with the reason). The seen command ids are durable
(appliance.store.command_log), so a command redelivered after a restart (a QoS1 retry,
a replay by an attacker) never runs twice: a reboot command must not reboot the kiosk
in a loop. What each command does lives in fleet_actions; collect_logs in device_logs.
An action that returns a Deferred result leaves its job IN_PROGRESS: its owner publishes
the final state later through the same publisher (an update ends after a reboot).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance.core.clock import Clock
from appliance.core.closing import OpenClosing
from appliance.core.events import Event, EventBus
from appliance.errors import CommandSignatureError
from appliance.mqtt import topics
from appliance.mqtt.dispatch import Dispatcher
from appliance.mqtt.payloads import Command, CommandName, CommandUpdate, JobState, decode
from appliance.mqtt.signing import verify_command

log = logging.getLogger(__name__)

Action = Callable[[dict[str, Any]], str]
"""Runs a command with its args (plus "command_id"); returns a short result, raises on failure."""


class Deferred(str):
    """An action's result that leaves the job IN_PROGRESS: the action's owner ends it later."""

    __slots__ = ()


TERMINAL_STATES: frozenset[JobState] = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT"})
# These would interrupt a customer mid-sale (a locked screen, a reboot, prices or
# settings changing under the cart), so they wait for the hub to retry after the sale.
BLOCKED_DURING_SALE: frozenset[CommandName] = frozenset(
    {"lock", "reboot", "reload_catalog", "set_config"}
)
MAX_REASON = 500  # characters of an action's result or error sent to the hub


class SeenCommands(Protocol):
    """Durable set of command ids already accepted; thread-safe as far as its store is.

    appliance.store.command_log.SqliteSeenCommands keeps them in the appliance database.
    """

    def remember(self, command_id: str, expires_at: datetime) -> bool:
        """Record `command_id`; True when it was new, False when it was seen before."""
        ...


@dataclass(frozen=True, slots=True)
class CommandReceived(Event):
    """A command message decoded on paho's thread, for the main loop to check and queue."""

    command: Command


class CommandHandler(OpenClosing):
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
        held: Callable[[CommandName], str] = lambda _name: "",
    ) -> None:
        self._device_id = device_id
        self._key = fleet_public_key
        self._publish_update = publish_update
        self._is_sale_open = is_sale_open
        self._actions = dict(actions)
        self._clock = clock
        self._seen = seen_store
        self._held = held  # why a command must wait now ("" when it need not)
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
        if held := self._held(command.name):
            return self._refuse(command, "REJECTED", held)
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
            if isinstance(result, Deferred):
                log.info("command %s (%s) goes on: %s", command.id, command.name, result)
                continue
            log.info("command %s (%s) succeeded: %s", command.id, command.name, result)
            self._update(command, "SUCCEEDED", str(result)[:MAX_REASON])


def _parse_time(text: str) -> datetime:
    """An ISO 8601 time with its offset; a naive time is refused (whose clock would it be?)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment
