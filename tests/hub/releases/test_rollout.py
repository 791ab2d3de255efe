"""Rollouts: which devices get a release, the signed update command each gets, the pause rule.

On SQLite and PostgreSQL; commands are only recorded and held here (no publisher), as when
`rollout start --hold-only` runs; tests/hub/releases/test_reports.py publishes them.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.errors import UpdateError
from appliance.mqtt.payloads import Command, decode
from appliance.mqtt.signing import verify_command
from appliance.update.manifest import verify_manifest
from hub.command_hold import HeldCommand
from hub.models import CommandJob, Device
from hub.releases.models import DeviceUpdate, Rollout, RolloutTarget
from hub.releases.rollout import (
    Signer,
    device_order,
    expire_silent_targets,
    finish_if_done,
    pause_reason,
    pause_rollouts,
    resume_rollouts,
    rollouts,
    share,
    start_rollout,
)
from hub.stores import assign_device
from tests.hub.releases.making import store_release

VERSION = "2026.12.2"
STORE = "berlin"
BASE = "https://hub.example:8443"
DEVICES = [f"kiosk-{n:02d}" for n in range(1, 21)]


@pytest.fixture
def fleet(rel_db: Database, release_key: Ed25519PrivateKey) -> bytes:
    """Twenty devices in STORE, two elsewhere, and release VERSION stored; its manifest."""
    for device in DEVICES:
        assign_device(rel_db, device, STORE)
    assign_device(rel_db, "other-1", "hamburg")
    assign_device(rel_db, "other-2", "hamburg")
    manifest, _ = store_release(rel_db, release_key, VERSION)
    return manifest


def targets(db: Database) -> dict[str, str]:
    """device -> job of every rollout target."""
    query = RolloutTarget.select(RolloutTarget.device, RolloutTarget.job).tuples()
    return {str(d): str(j) for d, j in query.execute(db)}


def held(db: Database) -> dict[str, Command]:
    """job -> the held command, decoded from the bytes a serve worker would publish."""
    query = HeldCommand.select(HeldCommand.job_id, HeldCommand.payload).tuples()
    return {str(j): decode(p.encode(), Command) for j, p in query.execute(db)}


def test_the_order_is_fixed_per_release_and_differs_between_releases() -> None:
    assert device_order(VERSION, DEVICES) == device_order(VERSION, list(reversed(DEVICES)))
    assert device_order(VERSION, DEVICES) != device_order("2026.12.3", DEVICES)
    assert [share(p, 20) for p in (1, 5, 10, 11, 50, 100)] == [1, 1, 2, 3, 10, 20]
    assert share(7, 100) == 7  # integer arithmetic: no 7.000000000000001 rounding up to 8


def test_start_sends_a_signed_held_update_command_to_the_first_share_of_the_store(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey, release_key: Ed25519PrivateKey
) -> None:
    grown = start_rollout(rel_db, VERSION, STORE, 10, Signer(fleet_key, BASE + "/"))
    expected = device_order(VERSION, DEVICES)[:2]
    assert sorted(c.device for c in grown.added) == sorted(expected)
    assert set(targets(rel_db)) == set(expected)
    assert grown.published is False and grown.rollout.targeted == 2
    commands = held(rel_db)
    assert set(commands) == set(targets(rel_db).values())
    for command in commands.values():
        verify_command(command, fleet_key.public_key())  # as the device checks it
        assert command.name == "update"
        assert command.args == {
            "version": VERSION,
            "url": f"{BASE}/bundles/{VERSION}/payload.bin",
            "manifest": fleet.decode(),
            "signature": command.args["signature"],
        }
        signature = base64.b64decode(command.args["signature"], validate=True)
        # The device verifies the manifest it was sent with the release key: it must hold.
        manifest = verify_manifest(
            command.args["manifest"].encode(), signature, release_key.public_key()
        )
        assert manifest.version == VERSION
        job = CommandJob.select().where(CommandJob.id == command.id).get(rel_db)
        assert job.state == "SENT" and job.device == command.device


def test_raising_the_percent_adds_devices_and_never_sends_one_twice(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey
) -> None:
    signer = Signer(fleet_key, BASE)
    start_rollout(rel_db, VERSION, STORE, 10, signer)
    first = targets(rel_db)
    again = start_rollout(rel_db, VERSION, STORE, 10, signer)
    assert again.added == () and targets(rel_db) == first
    grown = start_rollout(rel_db, VERSION, STORE, 50, signer)
    now = targets(rel_db)
    assert len(now) == 10 and len(grown.added) == 8
    assert {d: now[d] for d in first} == first  # the same jobs: nothing sent again
    assert set(now) == set(device_order(VERSION, DEVICES)[:10])
    assert len(held(rel_db)) == 10
    assert Rollout.select().count(rel_db) == 1
    lower = start_rollout(rel_db, VERSION, STORE, 20, signer)  # cannot take devices back
    assert lower.added == () and lower.rollout.percent == 50


def test_devices_already_on_the_release_are_skipped_but_the_share_is_still_reached(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey
) -> None:
    order = device_order(VERSION, DEVICES)
    DeviceUpdate.insert(
        device=order[0], job="j0", version=VERSION, state="committed", running=VERSION,
        at=datetime(2026, 12, 1),
    ).execute(rel_db)  # fmt: skip
    Device.insert(id=order[1], firmware=VERSION).execute(rel_db)
    start_rollout(rel_db, VERSION, STORE, 10, Signer(fleet_key, BASE))
    assert set(targets(rel_db)) == set(order[2:4])


def test_a_paused_rollout_adds_no_device_until_resumed(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey
) -> None:
    signer = Signer(fleet_key, BASE)
    start_rollout(rel_db, VERSION, STORE, 10, signer)
    paused = pause_rollouts(rel_db, VERSION, "looking into it")
    assert [(v.state, v.pause_reason) for v in paused] == [("paused", "looking into it")]
    grown = start_rollout(rel_db, VERSION, STORE, 50, signer)
    assert grown.added == () and grown.rollout.state == "paused"
    assert len(targets(rel_db)) == 2
    (resumed,) = resume_rollouts(rel_db, VERSION, signer)
    assert resumed.rollout.state == "running" and len(resumed.added) == 8
    assert len(targets(rel_db)) == 10
    with pytest.raises(UpdateError, match="no paused rollout"):
        resume_rollouts(rel_db, VERSION, signer)


def test_status_counts_each_rollouts_devices_by_state(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey
) -> None:
    start_rollout(rel_db, VERSION, STORE, 25, Signer(fleet_key, BASE))
    jobs = sorted(targets(rel_db).values())
    for job, state in zip(jobs, ["downloading", "committed", "committed"], strict=False):
        RolloutTarget.update(state=state).where(RolloutTarget.job == job).execute(rel_db)
    (view,) = rollouts(rel_db, VERSION)
    assert view.counts == {"sent": 2, "downloading": 1, "committed": 2}
    assert (view.targeted, view.store_devices, view.percent) == (5, 20, 25)
    assert rollouts(rel_db, "2026.12.9") == []


def test_start_refuses_an_unknown_release_or_an_empty_store(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey
) -> None:
    signer = Signer(fleet_key, BASE)
    with pytest.raises(UpdateError, match=r"no release 2026\.12\.9"):
        start_rollout(rel_db, "2026.12.9", STORE, 10, signer)
    with pytest.raises(UpdateError, match="no devices"):
        start_rollout(rel_db, VERSION, "munich", 10, signer)
    assert Rollout.select().count(rel_db) == 0 and not held(rel_db)


@pytest.mark.parametrize(
    ("counts", "pauses"),
    [
        ({"committed": 4, "rolled_back": 1}, False),  # 20 %: not more than 20 %
        ({"committed": 3, "rolled_back": 1}, True),  # 25 %
        ({"committed": 1, "rolled_back": 1, "downloading": 5}, False),  # 2 finished of 3 needed
        ({"committed": 2, "rolled_back": 1, "downloading": 5}, True),  # 3 finished, 33 %
        ({"rolled_back": 1, "sent": 1}, True),  # fewer targeted than 3: any rollback
        ({"committed": 2, "rejected": 5}, False),  # refusals are not rollbacks
    ],
)
def test_the_pause_rule(counts: dict[str, int], pauses: bool) -> None:
    assert bool(pause_reason(counts, 0.2, 3)) is pauses


def test_command_args_are_strings_only_as_the_device_reads_them(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey
) -> None:
    start_rollout(rel_db, VERSION, STORE, 5, Signer(fleet_key, BASE))
    (command,) = held(rel_db).values()
    assert all(isinstance(value, str) for value in command.args.values())
    job = CommandJob.select().where(CommandJob.id == command.id).get(rel_db)
    assert json.loads(job.args)["version"] == VERSION


def test_admins_starting_one_rollout_at_once_make_one_rollout(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import threading

    # Each start waits for the other just before it creates the rollout: without the
    # store's lock both have found none by then and both create one. With it the second
    # waits for the first's commit, so the first's wait here runs out and it goes on.
    both_looked = threading.Barrier(2, timeout=3)
    insert = Rollout.insert

    def insert_after_both_looked(*args: object, **kwargs: object) -> object:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_looked.wait()
        return insert(*args, **kwargs)

    monkeypatch.setattr(Rollout, "insert", insert_after_both_looked)
    failures: list[BaseException] = []

    def start() -> None:
        try:
            start_rollout(rel_db, VERSION, STORE, 50, Signer(fleet_key, BASE))
        except BaseException as err:  # reported below
            failures.append(err)
        finally:
            rel_db.close()  # this thread's connection

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert Rollout.select().count(rel_db) == 1
    assert len(targets(rel_db)) == 10  # half the store, each device once
    assert HeldCommand.select().count(rel_db) == 10


def test_targets_silent_until_their_command_expired_are_marked_and_the_rollout_ends(
    rel_db: Database, fleet: bytes, fleet_key: Ed25519PrivateKey
) -> None:
    start_rollout(rel_db, VERSION, STORE, 100, Signer(fleet_key, BASE))
    jobs = sorted(targets(rel_db).values())
    sent_at = datetime(2026, 12, 1, 12, 0)
    RolloutTarget.update(updated_at=sent_at).execute(rel_db)
    # Seventeen devices finished; one answered and went quiet; two never said a word.
    for job in jobs[:17]:
        RolloutTarget.update(state="committed").where(RolloutTarget.job == job).execute(rel_db)
    RolloutTarget.update(state="downloading").where(RolloutTarget.job == jobs[17]).execute(rel_db)

    before_expiry = sent_at.replace(tzinfo=UTC) + timedelta(days=6)
    assert expire_silent_targets(rel_db, before_expiry) == []
    assert rollouts(rel_db, VERSION)[0].counts["sent"] == 2

    after_expiry = sent_at.replace(tzinfo=UTC) + timedelta(days=7, minutes=5)
    (rollout_id,) = expire_silent_targets(rel_db, after_expiry)
    (view,) = rollouts(rel_db, VERSION)
    assert view.id == rollout_id
    assert view.counts == {"committed": 17, "downloading": 1, "expired": 2}
    reasons = {
        str(r) for (r,) in RolloutTarget.select(RolloutTarget.reason)
        .where(RolloutTarget.state == "expired").tuples().execute(rel_db)
    }  # fmt: skip
    assert reasons == {"no word from the device in 7 days: the command expired"}
    assert view.state == "running"  # one device still has the job in hand
    RolloutTarget.update(state="committed").where(RolloutTarget.job == jobs[17]).execute(rel_db)
    assert expire_silent_targets(rel_db, after_expiry) == []  # nothing left to expire
    # The last report ends it as before; expired targets count as ended.
    assert finish_if_done(rel_db, rollout_id)
    assert rollouts(rel_db, VERSION)[0].state == "done"
