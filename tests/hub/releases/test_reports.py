"""Update reports through a real mosquitto and the worker `appliance-hub serve` runs.

A raw client plays each appliance and publishes UpdateReports on its up/update topic; the
worker stores the device's state and its rollout target, and pauses the rollout when the
rollbacks pass its threshold. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.payloads import Command, UpdateReport, UpdateState, decode, encode
from appliance.mqtt.signing import verify_command
from hub.cli_command import BrokerOptions
from hub.command_hold import HeldCommand
from hub.releases.issuing import broker_publisher
from hub.releases.models import DeviceUpdate, Rollout, RolloutTarget
from hub.releases.reports import UpdateReports
from hub.releases.rollout import Signer, resume_rollouts, rollouts, start_rollout
from hub.server import HubServer
from hub.stores import assign_device
from tests.broker import MosquittoBroker
from tests.hub.releases.making import store_release
from tests.hub.serving import start_serving_hub
from tests.hub.test_server import DeviceClient, wait_until

VERSION = "2026.12.2"
STORE = "berlin"
BASE = "https://hub.example:8443"
DEVICES = [f"kiosk-{n}" for n in range(1, 11)]


@pytest.fixture
def hub(broker: MosquittoBroker, rel_db: Database) -> Iterator[HubServer]:
    """The serve worker on the test's database of each kind."""
    server = start_serving_hub(broker, rel_db)
    yield server
    server.stop()


@pytest.fixture
def fleet(rel_db: Database, release_key: Ed25519PrivateKey) -> None:
    """Ten devices in STORE and release VERSION stored."""
    for device in DEVICES:
        assign_device(rel_db, device, STORE)
    store_release(rel_db, release_key, VERSION)


@pytest.fixture
def kiosk(broker: MosquittoBroker) -> Iterator[DeviceClient]:
    """A raw client that publishes the appliances' reports."""
    client = DeviceClient(broker, "reporter", [])
    yield client
    client.close()


def report(job: str, device: str, state: UpdateState, **fields: object) -> bytes:
    """An UpdateReport's bytes."""
    return encode(
        UpdateReport(device=device, job=job, version=VERSION, state=state, **fields)  # type: ignore[arg-type]
    )


def targets(db: Database) -> dict[str, tuple[str, str]]:
    """device -> (job, state) of every rollout target."""
    query = RolloutTarget.select(RolloutTarget.device, RolloutTarget.job, RolloutTarget.state)
    return {str(d): (str(j), str(s)) for d, j, s in query.tuples().execute(db)}


def device_update(db: Database, device: str) -> tuple[object, ...] | None:
    """(job, version, state, running, done, total, reason) of a device, or None."""
    query = DeviceUpdate.select(
        DeviceUpdate.job, DeviceUpdate.version, DeviceUpdate.state, DeviceUpdate.running,
        DeviceUpdate.done, DeviceUpdate.total, DeviceUpdate.reason,
    ).where(DeviceUpdate.device == device)  # fmt: skip
    found = query.tuples().execute(db)
    return tuple(found[0]) if found else None


def rollout_state(db: Database) -> tuple[str, str]:
    """(state, pause reason) of the one rollout."""
    row = Rollout.select().get(db)
    return str(row.state), str(row.pause_reason)


def test_reports_move_the_device_and_its_rollout_target(
    hub: HubServer, kiosk: DeviceClient, rel_db: Database, fleet: None, fleet_key: Ed25519PrivateKey
) -> None:
    start_rollout(rel_db, VERSION, STORE, 10, Signer(fleet_key, BASE))
    ((device, (job, _)),) = targets(rel_db).items()
    kiosk.publish(
        topics.update_up(device),
        report(job, device, "downloading", running="2026.12.1", done=400, total=1000),
    )
    expected = (job, VERSION, "downloading", "2026.12.1", 400, 1000, "")
    wait_until(lambda: device_update(rel_db, device) == expected)
    assert targets(rel_db)[device] == (job, "downloading")
    # A report again (a reconnect) and one from behind (another worker) change nothing.
    kiosk.publish(topics.update_up(device), report(job, device, "offered", running="2026.12.1"))
    kiosk.publish(
        topics.update_up(device), report(job, device, "committed", running=VERSION, total=1000)
    )
    wait_until(lambda: targets(rel_db)[device] == (job, "committed"))
    assert device_update(rel_db, device) == (job, VERSION, "committed", VERSION, 0, 1000, "")
    assert rollout_state(rel_db) == ("running", "")
    assert hub.stats.malformed == 0


def test_a_report_naming_another_device_is_malformed_and_stores_nothing(
    hub: HubServer, kiosk: DeviceClient, rel_db: Database, fleet: None, fleet_key: Ed25519PrivateKey
) -> None:
    start_rollout(rel_db, VERSION, STORE, 20, Signer(fleet_key, BASE))
    (device, (job, _)), (other, _) = targets(rel_db).items()
    kiosk.publish(topics.update_up(other), report(job, device, "rolled_back", reason="x"))
    kiosk.publish(topics.update_up(device), b"{not json")
    wait_until(lambda: hub.stats.malformed == 2)
    assert hub.per_device("malformed_by_device") == {other: 1, device: 1}
    assert DeviceUpdate.select().count(rel_db) == 0
    assert {state for _, state in targets(rel_db).values()} == {"sent"}


def test_rollbacks_past_the_threshold_pause_the_rollout_until_resumed(
    hub: HubServer, kiosk: DeviceClient, rel_db: Database, fleet: None, fleet_key: Ed25519PrivateKey
) -> None:
    signer = Signer(fleet_key, BASE)
    start_rollout(rel_db, VERSION, STORE, 50, signer, max_rollback_share=0.2, min_finished=3)
    jobs = targets(rel_db)
    order = sorted(jobs)
    finals: list[tuple[str, UpdateState]] = [
        (order[0], "committed"), (order[1], "committed"), (order[2], "rejected"),
    ]  # fmt: skip
    for device, state in finals:
        kiosk.publish(topics.update_up(device), report(jobs[device][0], device, state))
    wait_until(lambda: [targets(rel_db)[d][1] for d, _ in finals] == [s for _, s in finals])
    assert rollout_state(rel_db) == ("running", "")  # a refusal is no rollback
    rolled = order[3]
    kiosk.publish(
        topics.update_up(rolled),
        report(jobs[rolled][0], rolled, "rolled_back", reason="the new slot never became healthy"),
    )
    wait_until(lambda: rollout_state(rel_db)[0] == "paused")
    assert "1 of 3 finished device(s) rolled back" in rollout_state(rel_db)[1]
    assert device_update(rel_db, rolled)[2:] == (  # type: ignore[index]
        "rolled_back", "", 0, 0, "the new slot never became healthy",
    )  # fmt: skip
    # Paused: a higher percent adds nobody; resumed: the rollout goes on to its share.
    grown = start_rollout(rel_db, VERSION, STORE, 100, signer)
    assert grown.added == () and len(targets(rel_db)) == 5
    (resumed,) = resume_rollouts(rel_db, VERSION, signer)
    assert len(resumed.added) == 5 and resumed.rollout.state == "running"
    (view,) = rollouts(rel_db, VERSION)
    assert view.counts == {"sent": 6, "committed": 2, "rejected": 1, "rolled_back": 1}


def test_a_rollout_publishes_its_commands_to_the_devices_through_the_broker(
    broker: MosquittoBroker, rel_db: Database, fleet: None, fleet_key: Ed25519PrivateKey
) -> None:
    listeners = {d: DeviceClient(broker, d, [topics.command(d)]) for d in DEVICES}
    try:
        publish = broker_publisher(BrokerOptions(broker.host, broker.port))
        grown = start_rollout(rel_db, VERSION, STORE, 20, Signer(fleet_key, BASE, publish))
        assert grown.published and len(grown.added) == 2
        for command in grown.added:
            message = listeners[command.device].next(topics.command(command.device))
            arrived = decode(bytes(message.payload), Command)
            verify_command(arrived, fleet_key.public_key())
            assert arrived == command
            held = HeldCommand.select().where(HeldCommand.job_id == command.id).get(rel_db)
            assert held.payload.encode() == bytes(message.payload)  # what a birth sends again
    finally:
        for listener in listeners.values():
            listener.close()


def test_reports_only_move_forward_and_an_older_job_never_replaces_a_newer_one(
    rel_db: Database,
) -> None:
    reports = UpdateReports(rel_db)
    old, new = "0190a0a0-0000-7000-8000-000000000000", "0190a0a1-0000-7000-8000-000000000000"
    reports.on_report("kiosk-1", report(new, "kiosk-1", "downloading", done=500, total=1000))
    reports.on_report("kiosk-1", report(new, "kiosk-1", "downloading", done=300, total=1000))
    reports.on_report("kiosk-1", report(old, "kiosk-1", "rolled_back", reason="old news"))
    assert device_update(rel_db, "kiosk-1") == (new, VERSION, "downloading", "", 500, 1000, "")
    reports.on_report("kiosk-1", report(new, "kiosk-1", "downloaded", done=1000, total=1000))
    reports.on_report("kiosk-1", report(new, "kiosk-1", "downloading", done=900, total=1000))
    assert device_update(rel_db, "kiosk-1")[2] == "downloaded"  # type: ignore[index]


def test_a_newer_job_refused_because_one_is_in_hand_leaves_that_one_shown(
    rel_db: Database,
) -> None:
    reports = UpdateReports(rel_db)
    held, other = "0190a0a0-0000-7000-8000-000000000000", "0190a0a1-0000-7000-8000-000000000000"
    reports.on_report("kiosk-1", report(held, "kiosk-1", "downloading", done=500, total=1000))
    reports.on_report("kiosk-1", report(other, "kiosk-1", "rejected", reason="one in hand"))
    assert device_update(rel_db, "kiosk-1") == (held, VERSION, "downloading", "", 500, 1000, "")
    reports.on_report("kiosk-1", report(held, "kiosk-1", "committed", total=1000))
    # Once the job in hand has ended, a later refusal is the news.
    reports.on_report("kiosk-1", report(other, "kiosk-1", "rejected", reason="not newer"))
    assert device_update(rel_db, "kiosk-1")[2:] == ("rejected", "", 0, 0, "not newer")  # type: ignore[index]
