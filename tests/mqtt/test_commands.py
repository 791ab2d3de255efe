"""Fleet commands end to end over a real mosquitto: the hub signs, the appliance answers.

The appliance side is the real PahoHubLink, Dispatcher and CommandHandler, with a main
loop thread draining the bus as `appliance run` does; the hub side is the fleet CLI's
own client (hub/cli_command.py). Every assertion is on what crossed the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.core.devices import DrawerOpened
from appliance.core.events import Event, EventBus, KioskLockChanged
from appliance.device_settings import GpioDrawerSettings
from appliance.drivers.gpio_drawer import GpioDrawer
from appliance.drivers.sim.drawer import SimDrawer
from appliance.mqtt import topics
from appliance.mqtt.commands import CommandHandler, Deferred
from appliance.mqtt.config_sync import ConfigSync
from appliance.mqtt.device_logs import LogCollector, LogRing
from appliance.mqtt.fleet_actions import REBOOT_COMMAND, KioskLock, standard_actions
from appliance.mqtt.link import PahoHubLink, TlsFiles
from appliance.mqtt.payloads import (
    Command,
    CommandUpdate,
    DeviceStatus,
    LogLines,
    decode,
    encode,
)
from appliance.mqtt.signing import public_key_pem
from appliance.store.command_log import SqliteSeenCommands
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import migrate
from hub.cli_command import (
    BrokerOptions,
    FleetClient,
    command_command,
    logs_command,
    run_command,
)
from hub.fleet_keys import generate_fleet_keys, load_fleet_key, new_command
from tests import real_parts
from tests.broker import MosquittoBroker
from tests.mqtt.main_loop import start_main_loop
from tests.mqtt.tls_broker import Pki, TlsBroker

DEVICE = "kiosk-01"
WAIT = 10.0  # an upper bound on waiting for the broker, never asserted
FINAL = {"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT"}


class ManualClock:
    """Wall time that moves only when a test says so; monotonic is real (waits only)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()


def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll until `predicate` holds (the main loop delivers events on its own thread)."""
    deadline = time.monotonic() + WAIT
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert predicate()


@dataclass
class Appliance:
    """The device side: link, bus with a main-loop thread, command handler and its parts."""

    link: PahoHubLink
    bus: EventBus
    handler: CommandHandler
    clock: ManualClock
    lock: KioskLock
    sale_open: threading.Event
    events: list[Event] = field(default_factory=list)
    reboots: list[tuple[str, ...]] = field(default_factory=list)
    snapshots: list[bool] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    loop: threading.Thread | None = None


@dataclass
class Rig:
    """One test's world: broker, fleet key pair, the appliance and a hub-side client."""

    broker: MosquittoBroker
    key: Ed25519PrivateKey
    key_path: Path
    device: Appliance
    hub: FleetClient
    drawer_sim: SimDrawer
    make_device: Any

    def command(self, name: Any, args: dict[str, Any] | None = None, **kw: Any) -> Command:
        kw.setdefault("expires_in", timedelta(minutes=5))
        kw.setdefault("now", self.device.clock.at)
        return new_command(self.key, kw.pop("device", DEVICE), name, args, **kw)

    def send(self, command: Command | bytes) -> None:
        data = command if isinstance(command, bytes) else encode(command)
        self.hub.publish(topics.command(DEVICE), data)

    def updates(self, command_id: str) -> list[CommandUpdate]:
        """Updates for one command, up to its final state."""
        seen: list[CommandUpdate] = []
        while not seen or seen[-1].state not in FINAL:
            message = self.hub.next_message(WAIT)
            assert message is not None, f"no final update for {command_id}: {seen}"
            topic, data = message
            if topic == topics.command_update(DEVICE):
                update = decode(data, CommandUpdate)
                if update.id == command_id:
                    seen.append(update)
        return seen

    def logs(self) -> LogLines:
        while (message := self.hub.next_message(WAIT)) is not None:
            if message[0] == topics.logs_up(DEVICE):
                return decode(message[1], LogLines)
        raise AssertionError("no log lines arrived")


def states(updates: list[CommandUpdate]) -> list[str]:
    return [u.state for u in updates]


@pytest.fixture
def rig(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Rig]:
    key_path, public_path = generate_fleet_keys(tmp_path / "keys")
    key = load_fleet_key(key_path)
    assert public_path.read_bytes() == public_key_pem(key.public_key())
    db = open_database(tmp_path / "appliance.db")
    migrate(db, backup_dir=tmp_path / "backups")
    config_path = tmp_path / "appliance.toml"
    config_path.write_text('[device]\nid = "kiosk-01"\n')
    ring = LogRing()
    drawer_sim = SimDrawer(kick_pin=17, sensor_pin=None)
    running: list[Appliance] = []

    def make_device() -> Appliance:
        bus = EventBus()
        link = PahoHubLink(
            DEVICE, broker.host, broker.port, bus=bus, session_store=SessionStore(db)
        )
        clock = ManualClock()

        def publish(topic: str) -> Any:
            return lambda payload: link.publish(topic, encode(payload), qos=1)

        drawer = GpioDrawer(
            "till",
            GpioDrawerSettings(pin=17, pulse_ms=5, left_open_seconds=60.0),
            pin_factory=drawer_sim.factory,
        )
        drawer.open(bus)
        lock = KioskLock(bus)
        device = Appliance(link, bus, None, clock, lock, threading.Event())  # type: ignore[arg-type]
        actions = standard_actions(
            lock=lock,
            request_snapshot=lambda: device.snapshots.append(True),
            printer=None,
            drawer=drawer,
            config=ConfigSync(
                config_path, publish_reported=publish(topics.config_reported(DEVICE))
            ),
            logs=LogCollector(DEVICE, ring, publish(topics.logs_up(DEVICE))),
            run=lambda argv: device.reboots.append(tuple(argv)),
        )
        device.handler = CommandHandler(
            DEVICE,
            load_fleet_key(key_path).public_key(),
            publish_update=publish(topics.command_update(DEVICE)),
            is_sale_open=device.sale_open.is_set,
            actions=actions,
            clock=clock,
            seen_store=SqliteSeenCommands(db, clock),
        )
        device.handler.route(link.dispatcher, bus)
        bus.subscribe(Event, device.events.append)

        def main_loop() -> None:
            while not device.stop.is_set():
                bus.wait(0.02)
                bus.drain()
            drawer.close()

        device.loop = threading.Thread(target=main_loop, name="test-main-loop")
        device.loop.start()
        device.handler.open()
        link.open()
        running.append(device)
        return device

    hub = FleetClient(BrokerOptions(broker.host, broker.port), timeout=WAIT)
    with hub:
        hub.subscribe(topics.status(DEVICE), topics.command_update(DEVICE), topics.logs_up(DEVICE))
        device = make_device()
        wait_for_birth(hub)
        rig = Rig(broker, key, key_path, device, hub, drawer_sim, make_device)
        ring.emit(_record("the till is ready"))
        try:
            yield rig
        finally:
            for each in running:
                stop_device(each)
    drawer_sim.stop()
    drawer_sim.factory.close()
    db.close()


def stop_device(device: Appliance) -> None:
    device.link.close()
    device.handler.close()
    device.stop.set()
    if device.loop is not None:
        device.loop.join()


def wait_for_birth(hub: FleetClient) -> None:
    """The birth follows the device's SUBSCRIBE on its connection: after it, commands land."""
    while (message := hub.next_message(WAIT)) is not None:
        if message[0] == topics.status(DEVICE) and decode(message[1], DeviceStatus).online:
            return
    raise AssertionError("the appliance never came online")


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("appliance.test", logging.INFO, __file__, 1, message, None, None)


def test_a_signed_command_goes_queued_in_progress_succeeded(rig: Rig) -> None:
    command = rig.command("lock")
    rig.send(command)
    updates = rig.updates(command.id)
    assert states(updates) == ["QUEUED", "IN_PROGRESS", "SUCCEEDED"]
    assert updates[-1].reason == "locked"
    assert rig.device.lock.locked
    unlock = rig.command("unlock")
    rig.send(unlock)
    assert states(rig.updates(unlock.id))[-1] == "SUCCEEDED"
    assert not rig.device.lock.locked

    def changes() -> list[KioskLockChanged]:
        return [e for e in rig.device.events if isinstance(e, KioskLockChanged)]

    wait_until(lambda: len(changes()) == 2)
    assert changes() == [KioskLockChanged(True, command.id), KioskLockChanged(False, unlock.id)]


def test_an_unsigned_command_is_rejected(rig: Rig) -> None:
    command = msgspec.structs.replace(rig.command("unlock"), signature="")
    rig.send(command)
    assert rig.updates(command.id) == [
        CommandUpdate(id=command.id, state="REJECTED", reason="unsigned")
    ]


def test_a_tampered_or_foreign_signature_is_rejected_and_nothing_runs(rig: Rig) -> None:
    tampered = msgspec.structs.replace(rig.command("lock"), name="reboot")
    rig.send(tampered)
    assert states(rig.updates(tampered.id)) == ["REJECTED"]
    stranger = new_command(
        Ed25519PrivateKey.generate(),
        DEVICE,
        "reboot",
        expires_in=timedelta(minutes=5),
        now=rig.device.clock.at,
    )
    rig.send(stranger)
    [update] = rig.updates(stranger.id)
    assert (update.state, update.reason) == ("REJECTED", "bad signature")
    assert rig.device.reboots == []
    assert not rig.device.lock.locked


def test_an_expired_command_times_out_with_its_expiry(rig: Rig) -> None:
    command = rig.command(
        "reboot", now=rig.device.clock.at - timedelta(minutes=10), expires_in=timedelta(minutes=5)
    )
    rig.send(command)
    [update] = rig.updates(command.id)
    assert update.state == "TIMED_OUT"
    assert update.reason == f"expired at {command.expires_at}"
    assert rig.device.reboots == []


def test_a_replayed_command_is_rejected_even_after_a_restart(rig: Rig) -> None:
    command = rig.command("reboot")
    rig.send(command)
    assert states(rig.updates(command.id)) == ["QUEUED", "IN_PROGRESS", "SUCCEEDED"]
    assert rig.device.reboots == [REBOOT_COMMAND]
    rig.send(command)
    [update] = rig.updates(command.id)
    assert (update.state, update.reason) == ("REJECTED", "replayed")
    # A reboot really restarts the appliance: the seen ids must outlive the process, or a
    # redelivered reboot command would reboot the kiosk again and again.
    stop_device(rig.device)
    rig.device = rig.make_device()
    wait_for_birth(rig.hub)
    rig.send(command)
    [update] = rig.updates(command.id)
    assert (update.state, update.reason) == ("REJECTED", "replayed")
    assert rig.device.reboots == []


def test_a_command_for_another_device_is_rejected(rig: Rig) -> None:
    command = rig.command("unlock", device="kiosk-02")
    rig.send(command)  # on kiosk-01's topic: a hub bug or a forwarded message
    [update] = rig.updates(command.id)
    assert (update.state, update.reason) == ("REJECTED", "meant for device 'kiosk-02'")


def test_commands_that_would_interrupt_an_open_sale_are_rejected(rig: Rig) -> None:
    rig.device.sale_open.set()
    for name in ("lock", "reboot", "reload_catalog", "set_config"):
        command = rig.command(name, {"config": {}} if name == "set_config" else None)
        rig.send(command)
        [update] = rig.updates(command.id)
        assert (update.state, update.reason) == ("REJECTED", "a sale is open"), name
    assert (rig.device.reboots, rig.device.snapshots, rig.device.lock.locked) == ([], [], False)
    # Harmless ones still run: the drawer opens for the admin while the customer waits.
    drawer = rig.command("open_drawer")
    rig.send(drawer)
    assert states(rig.updates(drawer.id))[-1] == "SUCCEEDED"


def test_a_failing_action_reports_failed_with_the_reason(rig: Rig) -> None:
    command = rig.command("print_test_page")  # this appliance has no printer
    rig.send(command)
    updates = rig.updates(command.id)
    assert states(updates) == ["QUEUED", "IN_PROGRESS", "FAILED"]
    assert updates[-1].reason == "no receipt printer is configured"


def test_open_drawer_kicks_the_gpio_drawer_for_a_remote_reason(rig: Rig) -> None:
    command = rig.command("open_drawer")
    rig.send(command)
    assert states(rig.updates(command.id))[-1] == "SUCCEEDED"
    assert any(not change.state for change in rig.drawer_sim.kick_pin.states[1:])  # pulsed

    def opened() -> list[DrawerOpened]:
        return [e for e in rig.device.events if isinstance(e, DrawerOpened)]

    wait_until(lambda: bool(opened()))
    assert [(e.opening.reason, e.opening.reference) for e in opened()] == [("remote", command.id)]


def test_reload_catalog_asks_for_a_snapshot(rig: Rig) -> None:
    command = rig.command("reload_catalog")
    rig.send(command)
    assert states(rig.updates(command.id))[-1] == "SUCCEEDED"
    assert rig.device.snapshots == [True]


def test_collect_logs_publishes_the_last_lines(rig: Rig) -> None:
    command = rig.command("collect_logs", {"lines": 5})
    rig.send(command)
    logs = rig.logs()
    assert (logs.device, logs.command_id, logs.source) == (DEVICE, command.id, "ring")
    assert 1 <= len(logs.lines) <= 5
    assert logs.lines[0].endswith("appliance.test: the till is ready")


def test_a_malformed_command_is_counted_and_the_next_one_runs(rig: Rig) -> None:
    rig.send(b'{"v": 1, "id": "x"')
    command = rig.command("unlock")
    rig.send(command)
    assert states(rig.updates(command.id))[-1] == "SUCCEEDED"
    assert rig.device.link.dispatcher.malformed == 1


def test_the_fleet_command_cli_signs_sends_and_prints_the_states(rig: Rig) -> None:
    result = CliRunner().invoke(
        command_command,
        [
            DEVICE,
            "lock",
            "--fleet-key",
            str(rig.key_path),
            "--host",
            rig.broker.host,
            "--port",
            str(rig.broker.port),
            "--wait",
            str(WAIT),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1:] == ["QUEUED", "IN_PROGRESS", "SUCCEEDED: locked"]
    assert rig.device.lock.locked


def test_the_fleet_logs_cli_prints_the_lines(rig: Rig) -> None:
    result = CliRunner().invoke(
        logs_command,
        [
            DEVICE,
            "-n",
            "3",
            "--fleet-key",
            str(rig.key_path),
            "--host",
            rig.broker.host,
            "--port",
            str(rig.broker.port),
            "--wait",
            str(WAIT),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lines from the ring of kiosk-01" in result.output
    assert "SUCCEEDED" in result.output


def test_run_command_gives_up_waiting_with_status_2_when_the_device_is_away(rig: Rig) -> None:
    command = rig.command("lock", device="kiosk-99")
    output: list[str] = []
    status = run_command(rig.hub, command, wait=0.2, clock=rig.device.clock, echo=output.append)
    assert status == 2
    assert "no final answer" in output[-1]


# --- The handler's own rules, without a broker (updates collected in a list).


@dataclass
class Bench:
    """A CommandHandler whose updates land in a list; its worker runs for real."""

    handler: CommandHandler
    clock: ManualClock
    updates: list[CommandUpdate]
    key: Ed25519PrivateKey
    seen: SqliteSeenCommands
    release: threading.Event  # lets the slow "lock" action finish

    def command(self, name: Any = "lock", **kw: Any) -> Command:
        kw.setdefault("expires_in", timedelta(minutes=5))
        kw.setdefault("now", self.clock.at)
        return new_command(self.key, DEVICE, name, kw.pop("args", None), **kw)

    def final(self, command_id: str) -> list[str]:
        wait_until(lambda: any(u.id == command_id and u.state in FINAL for u in self.updates))
        return [u.state for u in self.updates if u.id == command_id]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    key = Ed25519PrivateKey.generate()
    db = open_database(tmp_path / "appliance.db")
    migrate(db, backup_dir=tmp_path / "backups")
    clock = ManualClock()
    updates: list[CommandUpdate] = []
    release = threading.Event()

    def slow(_args: dict[str, Any]) -> str:
        release.wait(WAIT)
        return "done"

    seen = SqliteSeenCommands(db, clock)
    handler = CommandHandler(
        DEVICE,
        key.public_key(),
        publish_update=updates.append,
        is_sale_open=lambda: False,
        actions={
            "lock": slow,
            "unlock": lambda args: str(args["why"]),
            "update": lambda args: Deferred(f"offered {args['version']}"),
        },
        clock=clock,
        seen_store=seen,
    )
    with handler:
        yield Bench(handler, clock, updates, key, seen, release)
        release.set()
    db.close()


def test_a_command_that_waits_past_its_expiry_behind_another_times_out(bench: Bench) -> None:
    slow = bench.command("lock")
    short = bench.command("unlock", expires_in=timedelta(seconds=30), args={"why": "x"})
    assert bench.handler.handle(slow) == "QUEUED"
    assert bench.handler.handle(short) == "QUEUED"
    wait_until(lambda: [u.state for u in bench.updates if u.id == slow.id][-1] == "IN_PROGRESS")
    bench.clock.at += timedelta(minutes=1)  # the slow one took a minute
    bench.release.set()
    assert bench.final(short.id) == ["QUEUED", "TIMED_OUT"]
    assert bench.final(slow.id) == ["QUEUED", "IN_PROGRESS", "SUCCEEDED"]


def test_a_deferred_result_leaves_the_job_in_progress_for_its_owner_to_end(
    bench: Bench,
) -> None:
    update = bench.command("update", args={"version": "2026.12.1"})
    after = bench.command("unlock", args={"why": "next"})
    assert bench.handler.handle(update) == "QUEUED"
    assert bench.handler.handle(after) == "QUEUED"
    # The command after it ran to its end: the worker went on past the deferred one.
    assert bench.final(after.id) == ["QUEUED", "IN_PROGRESS", "SUCCEEDED"]
    assert [u.state for u in bench.updates if u.id == update.id] == ["QUEUED", "IN_PROGRESS"]


def test_an_action_error_without_a_message_names_its_type(bench: Bench) -> None:
    command = bench.command("unlock", args={})  # the action reads args["why"]: KeyError
    bench.handler.handle(command)
    assert bench.final(command.id) == ["QUEUED", "IN_PROGRESS", "FAILED"]
    assert bench.updates[-1].reason == "'why'"


def test_a_command_this_appliance_cannot_do_is_rejected(bench: Bench) -> None:
    command = bench.command("reboot")
    assert bench.handler.handle(command) == "REJECTED"
    assert bench.updates == [
        CommandUpdate(id=command.id, state="REJECTED", reason="reboot is not supported here")
    ]


@pytest.mark.parametrize("expires_at", ["tomorrow", "2030-01-01T00:00:00"])
def test_an_expiry_that_is_not_an_iso_time_with_offset_is_rejected(
    bench: Bench, expires_at: str
) -> None:
    unsigned = msgspec.structs.replace(bench.command(), expires_at=expires_at, signature="")
    from appliance.mqtt.signing import sign_command

    command = sign_command(unsigned, bench.key)
    assert bench.handler.handle(command) == "REJECTED"
    assert bench.updates[-1].reason == f"bad expires_at {expires_at!r}"


def test_malformed_bytes_raise_decode_error_for_the_dispatcher_to_count(bench: Bench) -> None:
    from appliance.mqtt.payloads import DecodeError

    with pytest.raises(DecodeError):
        bench.handler.on_message(b"\xff\x00")
    assert bench.updates == []


def test_seen_ids_are_pruned_a_week_after_they_expired(bench: Bench) -> None:
    command = bench.command()
    assert bench.handler.handle(command) == "QUEUED"
    assert command.id in bench.seen
    bench.clock.at += timedelta(days=8)
    assert bench.seen.remember("another", bench.clock.at + timedelta(minutes=5))
    assert command.id not in bench.seen
    # Long expired by then: the expiry check answers before the seen ids are asked.
    assert bench.handler.handle(command) == "TIMED_OUT"


def test_the_log_ring_keeps_the_last_lines_and_collect_logs_checks_its_argument() -> None:
    ring = LogRing(capacity=3)
    for n in range(5):
        ring.emit(_record(f"line {n}"))
    assert [line.rsplit(": ", 1)[1] for line in ring.tail(10)] == ["line 2", "line 3", "line 4"]
    assert ring.tail(0) == []
    sent: list[LogLines] = []
    collector = LogCollector(DEVICE, ring, sent.append)
    assert collector.collect({"lines": 2, "command_id": "c1"}) == "2 lines sent from the ring"
    assert [len(s.lines) for s in sent] == [2]
    for bad in ("many", 0, True):
        with pytest.raises(ValueError, match="lines: expected a whole number"):
            collector.collect({"lines": bad})
    # More than the protocol's maximum is clamped to it, and the answer says so.
    assert collector.collect({"lines": 10**6}).endswith("(asked for 1000000, at most 5000)")


def test_log_source_uses_the_journal_only_under_journald() -> None:
    from appliance.mqtt.device_logs import JournalLogSource, log_source

    ring = LogRing()
    assert log_source(ring, journald=False) is ring
    journal = log_source(ring, journald=True)
    real_parts.module("systemd.journal", "systemd-python")
    assert isinstance(journal, JournalLogSource)
    assert isinstance(journal.tail(3), list)  # reads whatever this machine's journal holds


def test_fleet_command_and_logs_over_mtls_with_the_shipped_acl(tmp_path: Path) -> None:
    """The hub identity may command, the device may answer: the shipped ACL allows the path."""
    pki = Pki.create(tmp_path / "pki")
    broker = TlsBroker(tmp_path / "broker", pki)
    broker.start()
    key_path, _ = generate_fleet_keys(tmp_path / "keys")
    db = open_database(tmp_path / "appliance.db")
    migrate(db, backup_dir=tmp_path / "backups")
    bus = EventBus()
    device = pki.client(DEVICE)
    link = PahoHubLink(
        DEVICE,
        broker.host,
        broker.device_port,
        tls=TlsFiles(device.ca_cert, device.cert, device.key),
        bus=bus,
        session_store=SessionStore(db),
    )
    ring = LogRing()
    ring.emit(_record("over mTLS"))
    lock = KioskLock(bus)
    clock = ManualClock()
    handler = CommandHandler(
        DEVICE,
        load_fleet_key(key_path).public_key(),
        publish_update=lambda u: link.publish(topics.command_update(DEVICE), encode(u), qos=1),
        is_sale_open=lambda: False,
        actions={
            "lock": lambda _args: (lock.set(True), "locked")[1],
            "collect_logs": LogCollector(
                DEVICE, ring, lambda p: link.publish(topics.logs_up(DEVICE), encode(p), qos=1)
            ).collect,
        },
        clock=clock,
        seen_store=SqliteSeenCommands(db, clock),
    )
    handler.route(link.dispatcher, bus)
    stop = threading.Event()
    loop = start_main_loop(bus, stop)
    hub = pki.client("hub")
    tls = ["--tls-ca", str(hub.ca_cert), "--tls-cert", str(hub.cert), "--tls-key", str(hub.key)]
    where = ["--host", broker.host, "--port", str(broker.hub_port), "--wait", str(WAIT)]
    try:
        with handler, link:
            assert link.wait_for(lambda state: state.connected, WAIT)
            # The device subscribed before its birth went out; wait for it as the hub would.
            with FleetClient(
                BrokerOptions(broker.host, broker.hub_port, hub.ca_cert, hub.cert, hub.key),
                timeout=WAIT,
            ) as watcher:
                watcher.subscribe(topics.status(DEVICE))
                wait_for_birth(watcher)
            args = ["--fleet-key", str(key_path), *where, *tls]
            result = CliRunner().invoke(command_command, [DEVICE, "lock", *args])
            assert result.exit_code == 0, result.output
            assert result.output.splitlines()[1:] == ["QUEUED", "IN_PROGRESS", "SUCCEEDED: locked"]
            result = CliRunner().invoke(logs_command, [DEVICE, "-n", "10", *args])
            assert result.exit_code == 0, result.output
            assert "appliance.test: over mTLS" in result.output
    finally:
        stop.set()
        loop.join()
        broker.stop()
        db.close()


def test_a_command_whose_id_cannot_be_recorded_is_rejected_not_run(bench: Bench) -> None:
    class BrokenStore:
        def remember(self, command_id: str, expires_at: datetime) -> bool:
            raise OSError("disk I/O error")

    ran: list[str] = []
    handler = CommandHandler(
        DEVICE,
        bench.key.public_key(),
        publish_update=bench.updates.append,
        is_sale_open=lambda: False,
        actions={"lock": lambda _args: ran.append("lock") or "locked"},
        clock=bench.clock,
        seen_store=BrokenStore(),
    )
    command = bench.command()
    assert handler.handle(command) == "REJECTED"
    assert bench.updates[-1].reason == "cannot record the command id: disk I/O error"
    assert ran == []
