"""Commands held at the hub for an offline device: sent again on its birth, until they expire.

A real mosquitto, the worker `appliance-hub serve` runs, the fleet CLI, and a raw paho
client playing the device; the rules of the hold itself run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.payloads import CommandName, DeviceStatus, encode
from hub.cli import cli
from hub.command_hold import HeldCommand, HeldCommands, held_jobs, mark_sent, unsent_jobs
from hub.dashboard.rendering import _job_state
from hub.device_answers import DeviceAnswers, jobs
from hub.fleet_keys import generate_fleet_keys, load_fleet_key, new_command
from hub.models import Device
from hub.server import HubServer
from tests.broker import MosquittoBroker
from tests.hub.test_server import DeviceClient, wait_until

DEVICE = "kiosk-1"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def status(online: bool, bd_seq: int) -> bytes:
    """A device's birth or will, as the appliance sends it."""
    return json.dumps(
        {"v": 1, "device": DEVICE, "online": online, "bd_seq": bd_seq, "firmware": "2.0.0"}
    ).encode()


def signed(
    tmp_path: Path, name: CommandName, *, issued: datetime, minutes: float, **args: Any
) -> bytes:
    """A command for DEVICE signed with a fleet key made in tmp_path."""
    key_file = tmp_path / "keys" / "fleet.key"
    if not key_file.exists():
        generate_fleet_keys(tmp_path / "keys")
    command = new_command(
        load_fleet_key(key_file), DEVICE, name, args, expires_in=timedelta(minutes=minutes),
        now=issued,
    )  # fmt: skip
    return encode(command)


def update(job_id: str, state: str, reason: str = "") -> bytes:
    """A command update as the device sends it."""
    return json.dumps({"v": 1, "id": job_id, "state": state, "reason": reason}).encode()


class FixedClock:
    """A clock standing still at `now` (the hold only reads now())."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return 0.0


def test_a_command_to_an_offline_device_reaches_it_when_it_connects_and_an_expired_one_does_not(
    broker: MosquittoBroker, serving_hub: HubServer, hub_db: Database, tmp_path: Path
) -> None:
    # The device was here and went away: its will is the retained status.
    gone = DeviceClient(broker, "kiosk-1-before", [])
    gone.publish(topics.status(DEVICE), status(True, 1), retain=True)
    gone.publish(topics.status(DEVICE), status(False, 1), retain=True)
    gone.close()
    wait_until(lambda: serving_hub.stats.statuses == 2)

    # Issued ten minutes ago for five: expired before anyone could deliver it.
    now = datetime.now(UTC)
    admin = DeviceClient(broker, "admin", [])
    stale = signed(tmp_path, "reboot", issued=now - timedelta(minutes=10), minutes=5)
    admin.publish(topics.command(DEVICE), stale)
    admin.close()
    # The fleet CLI gives up waiting (exit 2) and says the hub holds the command.
    sent = CliRunner().invoke(
        cli,
        ["fleet", "command", DEVICE, "lock", "--fleet-key", str(tmp_path / "keys" / "fleet.key"),
         "--host", broker.host, "--port", str(broker.port), "--wait", "0.5"],
    )  # fmt: skip
    assert sent.exit_code == 2, sent.output
    assert "holds it" in sent.output and "the hub records later answers" in sent.output
    wait_until(lambda: serving_hub.stats.commands == 2)
    by_name = {job.name: job for job in jobs(hub_db, DEVICE)}
    assert {job.state for job in by_name.values()} == {"SENT"}
    assert held_jobs(hub_db, DEVICE) == {by_name["lock"].id, by_name["reboot"].id}

    # It connects: subscribed first, then born, as the appliance's link does.
    device = DeviceClient(broker, DEVICE, [topics.command(DEVICE)])
    try:
        device.publish(topics.status(DEVICE), status(True, 2), retain=True)
        # Held commands go out in issue order: the expired one would have come first.
        first = json.loads(device.next(topics.command(DEVICE)).payload)
        assert (first["id"], first["name"]) == (by_name["lock"].id, "lock")

        for state, reason in (("QUEUED", ""), ("IN_PROGRESS", ""), ("SUCCEEDED", "locked")):
            device.publish(topics.command_update(DEVICE), update(first["id"], state, reason))
        wait_until(lambda: serving_hub.stats.command_updates == 3)
        job = {j.id: j for j in jobs(hub_db, DEVICE)}[first["id"]]
        assert (job.state, job.reason) == ("SUCCEEDED", "locked")
        assert job.lifecycle() == "SENT > QUEUED > IN_PROGRESS > SUCCEEDED"
        # Answered: no longer held. The expired one is shown as such, never sent.
        assert held_jobs(hub_db, DEVICE) == {by_name["reboot"].id}
        assert by_name["reboot"].expired_unanswered(datetime.now(UTC))
    finally:
        device.close()


def test_each_held_command_is_sent_once_per_device_session_whichever_worker_sees_the_birth(
    dash_db: Database, tmp_path: Path
) -> None:
    clock = FixedClock(NOW)
    data = signed(tmp_path, "lock", issued=NOW, minutes=5)
    DeviceAnswers(dash_db, clock=clock).command_sent(DEVICE, data)
    published: list[tuple[str, bytes]] = []
    workers = [
        HeldCommands(dash_db, lambda t, p: published.append((t, p)), clock=clock) for _ in range(2)
    ]

    # Every worker hears every birth; a retained birth can come again.
    for worker in workers:
        worker.resend(DEVICE, 7)
        worker.resend(DEVICE, 7)
    assert published == [(topics.command(DEVICE), data)]  # byte for byte, once

    # A new session (the device reconnected without answering): once more.
    workers[1].resend(DEVICE, 8)
    assert len(published) == 2
    # Past its expiry it is never sent again, and the sweep drops it.
    clock.current = NOW + timedelta(minutes=5)
    assert workers[0].resend(DEVICE, 9) == []
    assert HeldCommand.select().count(dash_db) == 1
    workers[0].sweep()
    assert HeldCommand.select().count(dash_db) == 0


def test_a_replayed_answer_to_a_command_sent_again_leaves_the_job_as_the_device_first_said(
    dash_db: Database, tmp_path: Path
) -> None:
    answers = DeviceAnswers(dash_db, clock=FixedClock(NOW))
    data = signed(tmp_path, "lock", issued=NOW, minutes=5)
    answers.command_sent(DEVICE, data)
    (job,) = jobs(dash_db, DEVICE)
    answers.command_update(DEVICE, update(job.id, "QUEUED"))
    assert held_jobs(dash_db, DEVICE) == set()  # any answer ends the hold
    # A worker sent it again just as the first answer came: the device says it had it.
    answers.command_update(DEVICE, update(job.id, "REJECTED", "replayed"))
    answers.command_update(DEVICE, update(job.id, "SUCCEEDED", "locked"))
    (job,) = jobs(dash_db, DEVICE)
    assert (job.state, job.reason) == ("SUCCEEDED", "locked")
    assert job.lifecycle() == "SENT > QUEUED > SUCCEEDED"
    assert ["REJECTED", "replayed"] in [entry[:2] for entry in job.history]

    # The command seen again on the topic (the worker's own resend) holds nothing anew.
    answers.command_sent(DEVICE, data)
    assert held_jobs(dash_db, DEVICE) == set()


def _online(db: Database, bd_seq: int, *, online: bool = True) -> None:
    """The device's row as the worker records its birth (or will)."""
    Device.insert(id=DEVICE, online=online, bd_seq=bd_seq).on_conflict(
        conflict_target=[Device.id], update={Device.online: online, Device.bd_seq: bd_seq}
    ).execute(db)


def test_a_command_published_to_an_online_device_is_not_sent_again_in_the_same_session(
    dash_db: Database, tmp_path: Path
) -> None:
    clock = FixedClock(NOW)
    published: list[bytes] = []
    worker = HeldCommands(dash_db, lambda _t, p: published.append(p), clock=clock)
    _online(dash_db, 7)
    data = signed(tmp_path, "lock", issued=NOW, minutes=5)
    DeviceAnswers(dash_db, clock=clock).command_sent(DEVICE, data)  # as the dashboard does
    (job,) = jobs(dash_db, DEVICE)
    assert unsent_jobs(dash_db, DEVICE) == {job.id}  # "not published yet"
    mark_sent(dash_db, [job.id])  # its publish succeeded
    assert unsent_jobs(dash_db, DEVICE) == set()
    worker.resend(DEVICE, 7)  # the retained birth seen again (a worker restarted)
    assert published == []
    worker.resend(DEVICE, 8)  # a new session without an answer: sent again
    assert published == [data]

    # To an offline device, a publish reaches nobody: its next birth sends it.
    _online(dash_db, 8, online=False)
    other = signed(tmp_path, "unlock", issued=NOW, minutes=5)
    DeviceAnswers(dash_db, clock=clock).command_sent(DEVICE, other)
    other_id = json.loads(other)["id"]
    mark_sent(dash_db, [other_id])
    assert worker.resend(DEVICE, 8) == [other_id]


def test_a_worker_marks_a_command_sent_when_the_device_was_born_before_it_was_issued(
    dash_db: Database, tmp_path: Path
) -> None:
    clock = FixedClock(NOW)
    published: list[bytes] = []
    worker = HeldCommands(dash_db, lambda _t, p: published.append(p), clock=clock)
    _online(dash_db, 3)
    worker.on_status(DEVICE, DeviceStatus(device=DEVICE, online=True, bd_seq=3))
    answers = DeviceAnswers(dash_db, clock=clock)
    before = signed(tmp_path, "lock", issued=NOW - timedelta(minutes=1), minutes=5)
    after = signed(tmp_path, "unlock", issued=NOW + timedelta(minutes=1), minutes=5)
    for data in (before, after):
        answers.command_sent(DEVICE, data)  # seen on the broker (the CLI published it)
    # The birth again, later (a resync): only the one issued before the birth goes out.
    clock.current = NOW + timedelta(minutes=2)
    worker.on_status(DEVICE, DeviceStatus(device=DEVICE, online=True, bd_seq=3))
    assert published == [before]


def test_a_lost_publish_to_an_online_device_is_sent_by_the_periodic_pass(
    dash_db: Database, tmp_path: Path
) -> None:
    clock = FixedClock(NOW)
    published: list[bytes] = []
    worker = HeldCommands(dash_db, lambda _t, p: published.append(p), clock=clock)
    _online(dash_db, 5)
    data = signed(tmp_path, "lock", issued=NOW, minutes=5)
    DeviceAnswers(dash_db, clock=clock).command_sent(DEVICE, data)  # the publish then failed
    clock.current = NOW + timedelta(seconds=10)
    worker.resend_unsent()
    assert published == []  # it may still be on its way
    clock.current = NOW + timedelta(seconds=31)
    worker.resend_unsent()
    worker.resend_unsent()  # once per session
    assert published == [data]
    # An offline device's commands wait for its birth.
    _online(dash_db, 5, online=False)
    DeviceAnswers(dash_db, clock=clock).command_sent(
        DEVICE, signed(tmp_path, "unlock", issued=NOW, minutes=5)
    )
    clock.current = NOW + timedelta(minutes=2)
    worker.resend_unsent()
    assert published == [data]


def test_a_replayed_answer_alone_shows_the_command_delivered_never_expired(
    dash_db: Database, tmp_path: Path
) -> None:
    answers = DeviceAnswers(dash_db, clock=FixedClock(NOW))
    data = signed(tmp_path, "lock", issued=NOW, minutes=5)
    answers.command_sent(DEVICE, data)
    (job,) = jobs(dash_db, DEVICE)
    # The device's first answer was lost; the command sent again is "replayed".
    answers.command_update(DEVICE, update(job.id, "REJECTED", "replayed"))
    assert held_jobs(dash_db, DEVICE) == set()
    answers.command_sent(DEVICE, data)  # seen again on the topic: not held anew
    assert held_jobs(dash_db, DEVICE) == set()
    (job,) = jobs(dash_db, DEVICE)
    later = NOW + timedelta(minutes=10)
    assert job.state == "SENT" and job.delivered_only()
    assert not job.expired_unanswered(later)
    assert _job_state(job, set(), True) == ("delivered, outcome unknown", "wait")

    # The replayed answer before the command itself: the job is SENT, not REJECTED.
    other = signed(tmp_path, "unlock", issued=NOW, minutes=5)
    other_id = json.loads(other)["id"]
    answers.command_update(DEVICE, update(other_id, "REJECTED", "replayed"))
    answers.command_sent(DEVICE, other)
    shown = {j.id: j for j in jobs(dash_db, DEVICE)}[other_id]
    assert (shown.state, shown.delivered_only()) == ("SENT", True)
    assert held_jobs(dash_db, DEVICE) == set()
