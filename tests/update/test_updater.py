"""The update job end to end on DirectorySlots: each "boot" is a new Updater over the same state,
slots and database, as after a reboot or a power cut; the download is the real one, from a
local payload file instead of the hub's bundle server."""

from __future__ import annotations

import base64
import sqlite3
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.errors import UpdateError
from appliance.mqtt.commands import Deferred
from appliance.mqtt.payloads import CommandUpdate, UpdateReport
from appliance.store.carry_over import carry_across_restore
from appliance.update.boot import UpdateBoot
from appliance.update.download import DownloadProgress, download, verify_slot
from appliance.update.gate import Check, HealthGate
from appliance.update.host_firmware import firmware_boot
from appliance.update.manifest import BundleManifest
from appliance.update.permit import MaintenanceWindow, RebootPermit
from appliance.update.slots import DirectorySlots, SlotWriter
from appliance.update.state import StateFile, UpdateRecord
from appliance.update.updater import HOLD_REASON, MAX_DOWNLOAD_ATTEMPTS, Updater
from tests.update.bundles import extract_payload, make_bundle

WAIT = 10.0
OLD, NEW, NEWER = "2026.6.1", "2026.12.1", "2026.12.2"


def url_of(version: str) -> str:
    return f"https://hub.test/bundles/{version}/payload.bin"


def wait_until(done: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class FileSource:
    """payload.bin read by range from a local file (the bundle server's part)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, offset: int, size: int) -> bytes:
        with self.path.open("rb") as payload:
            payload.seek(offset)
            return payload.read(size)


class Device:
    """One appliance's disk (slots, state, database) and what it sent, across boots."""

    def __init__(self, tmp_path: Path, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.bundle, self.manifest = make_bundle(tmp_path, version=NEW, key=key)
        self.payload = extract_payload(self.bundle, tmp_path / "payload.bin")
        self.payloads = {url_of(NEW): self.payload}  # what the bundle server serves
        self.root = tmp_path / "slots"
        self.database = tmp_path / "data" / "appliance.db"
        self.database.parent.mkdir()
        with sqlite3.connect(self.database) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE sale (id TEXT PRIMARY KEY)")
            db.execute("INSERT INTO sale VALUES ('before the update')")
        db.close()
        self.reports: list[UpdateReport] = []
        self.commands: list[CommandUpdate] = []
        self.holds: list[str] = []
        self.rebooted = threading.Event()
        self.why_not = ""  # what the reboot permit says
        self.healthy = True  # whether the gate's checks hold
        self.hub_error = ""  # what every fetch fails with, when set
        self.hold_applies = True  # whether the main loop applies a sales hold in time
        self.fetches = 0
        self.updater: Updater | None = None
        self.boot: UpdateBoot | None = None

    def power_on(self, running: str, *, gate_timeout: float = 30.0) -> UpdateBoot:
        """The firmware picks the slot; the start-up step runs; a new Updater is opened."""
        self.power_off()
        firmware_boot(self.root)
        self.rebooted.clear()
        slots = DirectorySlots(self.root, on_reboot=self.rebooted.set)
        boot = UpdateBoot(
            StateFile(self.database.parent / "update" / "state.json"),
            slots,
            self.database,
            keep=carry_across_restore,
        )
        boot.start()
        gate = HealthGate([Check("the hub link", lambda: self.healthy)], gate_timeout, poll_s=0.01)
        self.updater = Updater(
            device="kiosk-1",
            boot=boot,
            release_key=self.key.public_key(),
            running=running,
            fetch=self.fetch,
            publish_report=self.reports.append,
            publish_command=self.commands.append,
            may_reboot=lambda: self.why_not,
            hold_sales=self.hold,
            gate=gate,
            poll_s=0.01,
            retry_s=(0.01,),
        )
        self.updater.open()
        self.boot = boot
        return boot

    def hold(self, reason: str) -> bool:
        """The sales hold as the main loop applies it (or does not, while it is busy)."""
        self.holds.append(reason)
        return self.hold_applies

    def power_off(self) -> None:
        if self.updater is not None:
            self.updater.close()
            self.updater = None

    def fetch(
        self,
        manifest: BundleManifest,
        url: str,
        slot: SlotWriter,
        progress: DownloadProgress,
        *,
        record: Callable[[DownloadProgress], None],
        on_progress: Callable[[int, int], None],
        should_stop: Callable[[], bool],
    ) -> None:
        self.fetches += 1
        if self.hub_error:
            raise UpdateError(self.hub_error)
        done = download(
            manifest,
            FileSource(self.payloads[url]),
            slot,
            progress,
            record=record,
            on_progress=on_progress,
            should_stop=should_stop,
            flush_every=1,
        )
        if done.complete(manifest):
            verify_slot(manifest, slot, record=record)

    def command(self, job: str = "job-1", **changes: Any) -> dict[str, Any]:
        args = command_for(self.bundle, NEW, job)
        args.update(changes)
        return args

    def release(self, version: str, folder: Path, job: str) -> dict[str, Any]:
        """Another release on the hub, and the command offering it."""
        bundle, _manifest = make_bundle(folder, version=version, key=self.key)
        self.payloads[url_of(version)] = extract_payload(bundle, folder / "payload.bin")
        return command_for(bundle, version, job)

    def sales(self) -> list[str]:
        with sqlite3.connect(self.database) as db:
            rows = [row[0] for row in db.execute("SELECT id FROM sale ORDER BY id")]
        db.close()
        return rows

    def sell(self, sale: str) -> None:
        with sqlite3.connect(self.database) as db:
            db.execute("INSERT INTO sale VALUES (?)", (sale,))
        db.close()

    def phase(self) -> str:
        return StateFile(self.database.parent / "update" / "state.json").load().phase

    def states(self) -> list[str]:
        return [report.state for report in self.reports]


def command_for(bundle: Path, version: str, job: str) -> dict[str, Any]:
    """The update command's args for a bundle."""
    return {
        "command_id": job,
        "version": version,
        "url": url_of(version),
        "manifest": bundle_member(bundle, "manifest.json").decode("utf-8"),
        "signature": base64.b64encode(bundle_member(bundle, "manifest.sig")).decode("ascii"),
    }


def bundle_member(bundle: Path, name: str) -> bytes:
    with tarfile.open(bundle) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


@pytest.fixture
def device(tmp_path: Path, release_private_key: Ed25519PrivateKey) -> Iterator[Device]:
    made = Device(tmp_path, release_private_key)
    yield made
    made.power_off()


def offer(device: Device, **changes: Any) -> str:
    assert device.updater is not None
    return device.updater.action(device.command(**changes))


def test_a_good_update_downloads_tries_passes_the_gate_and_commits(device: Device) -> None:
    device.power_on(OLD)
    result = offer(device)
    assert isinstance(result, Deferred) and result == f"update to {NEW} offered"
    device.rebooted.wait(WAIT)
    assert device.rebooted.is_set()
    assert device.phase() == "trying"
    assert device.holds[-1] == HOLD_REASON  # no sale between the snapshot and the reboot
    assert device.states()[0] == "offered"
    assert {"downloading", "downloaded"} <= set(device.states())
    assert device.states()[-1] == "trying"
    slot_b = device.root / "slot-B"
    for part in device.manifest.parts:
        assert (slot_b / f"{part.name}.img").stat().st_size == part.size

    boot = device.power_on(NEW)  # the try boot
    # (trying() turns False once the gate commits: read what the firmware started instead)
    assert boot.mode == "gating" and (device.root / "booted").read_text().split() == ["B", "1"]
    wait_until(lambda: device.phase() == "committed", "the commit")
    wait_until(lambda: device.commands, "the final command state")
    assert device.commands[-1] == CommandUpdate(
        id="job-1", state="SUCCEEDED", reason=f"committed {NEW}"
    )
    assert device.reports[-1].state == "committed" and device.reports[-1].running == NEW
    assert device.holds[-1] == ""  # sales go on once committed
    assert not boot.snapshot_path.exists()

    device.power_on(NEW)  # and B stays the default from now on
    assert (
        device.boot and device.boot.slots.booted(),
        device.boot and device.boot.slots.trying(),
    ) == ("B", False)


def test_a_failed_gate_reboots_and_the_old_slot_restores_the_snapshot_and_refuses_the_version(
    device: Device,
) -> None:
    device.power_on(OLD)
    offer(device)
    device.rebooted.wait(WAIT)
    device.healthy = False
    device.power_on(NEW, gate_timeout=0.05)  # the try boot: the hub link never comes
    # What the new slot wrote before it failed: a migration, and a row in the WAL.
    with sqlite3.connect(device.database) as db:
        db.execute("CREATE TABLE added_by_the_new_release (x INTEGER)")
    db.close()
    device.sell("written by the new release")
    device.rebooted.wait(WAIT)
    assert device.phase() == "gate_failed"
    assert device.commands == []  # the job is not over until the old slot says so

    boot = device.power_on(OLD)  # the firmware's flag was one-shot: slot A again
    assert boot.slots.booted() == "A" and not boot.slots.trying()
    assert device.phase() == "rolled_back"
    assert device.sales() == ["before the update"]  # the snapshot is back
    with sqlite3.connect(device.database) as db:  # the new release's migration is undone
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    db.close()
    assert tables == {"sale"}
    assert device.updater is not None
    device.updater.connected()  # the hub link comes up: the job's end is reported
    reason = "the new slot never became healthy: not within 0.05 s: the hub link"
    assert device.reports[-1].state == "rolled_back"
    assert device.reports[-1].reason == reason
    assert device.commands[-1] == CommandUpdate(
        id="job-1", state="FAILED", reason=f"rolled back: {reason}"
    )
    # The same version offered again (a new job) is refused before any download.
    before = len(device.reports)
    offer(device, job="job-2")
    assert device.commands[-1].state == "REJECTED"
    assert "rolled back here before" in device.commands[-1].reason
    assert device.reports[before:][-1].state == "rejected"


def test_a_newer_offer_after_a_failed_gate_is_rejected_and_the_fallback_slot_stays_untouched(
    device: Device, tmp_path: Path
) -> None:
    device.power_on(OLD)
    offer(device)
    device.rebooted.wait(WAIT)
    device.healthy = False
    device.power_on(NEW, gate_timeout=0.05)
    device.sell("written by the new release")
    device.rebooted.wait(WAIT)
    assert device.phase() == "gate_failed"
    # The reboot is asked, but the process runs on until it is stopped: an offer comes.
    assert device.updater is not None
    result = device.updater.action(device.release(NEWER, tmp_path / "newer", "job-2"))
    assert result.startswith("rejected")
    assert device.commands[-1].id == "job-2" and device.commands[-1].state == "REJECTED"
    assert [r.state for r in device.reports if r.job == "job-2"] == ["rejected"]
    time.sleep(0.2)  # a download started by mistake would be writing by now
    assert not (device.root / "slot-A").exists()  # the slot the firmware falls back to
    assert device.phase() == "gate_failed"

    device.power_on(OLD)
    assert device.phase() == "rolled_back"
    assert device.sales() == ["before the update"]  # the snapshot was still there to restore


def test_once_the_try_committed_the_same_boot_takes_the_next_offer_into_the_old_slot(
    device: Device, tmp_path: Path
) -> None:
    device.power_on(OLD)
    offer(device)
    device.rebooted.wait(WAIT)
    device.power_on(NEW)
    wait_until(lambda: device.phase() == "committed", "the commit")
    assert device.updater is not None
    result = device.updater.action(device.release(NEWER, tmp_path / "newer", "job-2"))
    assert result == f"update to {NEWER} offered"
    device.rebooted.wait(WAIT)
    record = StateFile(device.database.parent / "update" / "state.json").load()
    # B is the default now: A, no longer the fallback, is the slot written and tried.
    assert (record.phase, record.version, record.tried_from) == ("trying", NEWER, "B")
    assert (device.root / "slot-A" / "root.img").exists()


def test_a_try_boot_with_no_try_in_hand_reboots_to_the_default_slot(device: Device) -> None:
    device.power_on(OLD)
    slots = DirectorySlots(device.root)
    slots.arm_try()
    (device.root / "tryboot").write_text("1")  # a try nobody recorded
    boot = device.power_on(NEW)
    assert boot.slots.trying() and boot.mode == "reboot"
    assert device.phase() == "idle"


def test_a_power_cut_after_trying_was_recorded_but_before_the_reboot_rolls_back(
    device: Device,
) -> None:
    device.power_on(OLD)
    offer(device)
    device.rebooted.wait(WAIT)
    (device.root / "tryboot").unlink()  # the cut came before the reboot set the flag
    device.power_on(OLD)
    assert device.phase() == "rolled_back"
    assert device.updater is not None
    device.updater.connected()
    assert device.reports[-1].reason == "the new slot did not start"


def test_a_power_cut_after_the_commit_was_written_finishes_it_at_the_next_start(
    device: Device,
) -> None:
    device.power_on(OLD)
    offer(device)
    device.rebooted.wait(WAIT)
    device.healthy = False  # the gate does not get to record the commit ...
    device.power_on(NEW)
    assert device.boot is not None
    device.boot.slots.commit()  # ... but autoboot.txt was rewritten when the power went
    device.healthy = True
    device.power_on(NEW)  # B is the default now, not a try
    assert device.phase() == "committed"
    assert device.sales() == ["before the update"]  # never rolled back over the new slot


def test_a_download_that_keeps_failing_ends_the_job_as_rejected(device: Device) -> None:
    device.power_on(OLD)
    device.hub_error = "bytes 0-99 of the payload: the server answered 404 Not Found"
    offer(device)
    wait_until(lambda: device.commands, "the job to end")
    assert device.phase() == "rejected"
    assert device.fetches == MAX_DOWNLOAD_ATTEMPTS
    assert device.commands[-1].state == "REJECTED" and "404" in device.commands[-1].reason
    assert device.reports[-1].state == "rejected"
    assert offer(device, job="job-2") == f"update to {NEW} offered"  # not "in hand"


def test_a_snapshot_that_cannot_be_taken_is_retried_then_rejected_never_rolled_back(
    device: Device,
) -> None:
    boot = device.power_on(OLD)
    blocker = boot.snapshot_path.with_name("snapshot.db.new")
    blocker.mkdir(parents=True)  # the snapshot's temp file cannot be made: "disk full"
    offer(device)
    wait_until(lambda: device.commands, "the job to end")
    assert device.phase() == "rejected"
    assert not device.rebooted.is_set()
    assert "cannot snapshot the database" in device.commands[-1].reason
    assert device.commands[-1].state == "REJECTED"
    assert "rolled_back" not in device.states() and "trying" not in device.states()
    assert StateFile(device.database.parent / "update" / "state.json").load().refused == ()
    assert device.holds[-1] == ""  # selling goes on


def test_a_snapshot_failure_that_clears_is_tried_again(device: Device) -> None:
    device.why_not = "a sale is open"
    boot = device.power_on(OLD)
    blocker = boot.snapshot_path.with_name("snapshot.db.new")
    blocker.mkdir(parents=True)
    offer(device)
    wait_until(lambda: device.phase() == "downloaded", "the download")
    device.why_not = ""
    wait_until(lambda: device.holds.count("") >= 1, "a failed try let sales go again")
    assert device.phase() == "downloaded"
    blocker.rmdir()  # room again
    assert device.rebooted.wait(WAIT)
    assert device.phase() == "trying"


def test_a_reboot_command_that_errors_but_reboots_still_gates_the_try(device: Device) -> None:
    boot = device.power_on(OLD)
    really = boot.slots.reboot_to_try

    def reboots_then_errors() -> None:  # systemctl fails, but the reboot happens anyway
        really()
        raise UpdateError("systemctl reboot: exit status 1")

    boot.slots.reboot_to_try = reboots_then_errors  # type: ignore[method-assign]
    offer(device)
    device.rebooted.wait(WAIT)
    wait_until(lambda: device.holds[-1] == "", "the worker to finish")
    assert device.phase() == "trying"  # the next start decides, not this worker
    assert "rolled_back" not in device.states() and device.commands == []
    assert device.power_on(NEW).mode == "gating"
    wait_until(lambda: device.phase() == "committed", "the commit")


def test_a_power_cut_during_the_download_resumes_where_the_card_has_it(device: Device) -> None:
    device.why_not = "a sale is open"  # keeps the job from rebooting once downloaded
    device.power_on(OLD)
    total_chunks = sum(len(part.chunks) for part in device.manifest.parts)
    offer(device)
    wait_until(
        lambda: StateFile(device.database.parent / "update" / "state.json").load().chunks_done > 0,
        "a chunk on the card",
    )
    device.power_off()  # stops between chunks, like the power going
    device.power_on(OLD)
    wait_until(lambda: device.phase() == "downloaded", "the rest of the download")
    record = StateFile(device.database.parent / "update" / "state.json").load()
    assert record.chunks_done == total_chunks
    device.why_not = ""
    device.rebooted.wait(WAIT)
    assert device.phase() == "trying"


def test_no_reboot_while_the_sales_hold_is_not_applied(device: Device) -> None:
    device.hold_applies = False  # the main loop is busy: scans may still be queued
    device.power_on(OLD)
    offer(device)
    wait_until(lambda: device.phase() == "downloaded", "the download")
    wait_until(lambda: device.holds.count(HOLD_REASON) >= 2, "the hold asked again")
    assert not device.rebooted.is_set()
    assert device.phase() == "downloaded"
    # Each hold not applied is let go again, so a late one does not stop sales for nothing.
    asked = list(device.holds)
    assert all(reason == "" for reason in asked[1::2])
    device.hold_applies = True
    assert device.rebooted.wait(WAIT)
    assert device.phase() == "trying"


def test_no_reboot_while_the_permit_says_a_sale_is_open(device: Device) -> None:
    device.why_not = "a sale is open"
    device.power_on(OLD)
    offer(device)
    wait_until(lambda: device.phase() == "downloaded", "the download")
    assert not device.rebooted.wait(0.2)
    assert HOLD_REASON not in device.holds
    device.why_not = ""
    assert device.rebooted.wait(WAIT)


@pytest.mark.parametrize(
    ("running", "changes", "reason"),
    [
        (NEW, {}, f"{NEW} is not newer than {NEW}"),
        ("2026.12.2", {}, f"{NEW} is not newer than 2026.12.2"),
        ("2025.1.1", {}, "2025.1.1 is older than 2026.1.1"),
        (OLD, {"signature": base64.b64encode(bytes(64)).decode()}, "not the release key's"),
        (OLD, {"version": "2026.12.9"}, f"the manifest is for {NEW}, not 2026.12.9"),
        (OLD, {"url": "http://hub.test/payload.bin"}, "is not https"),
    ],
)
def test_a_bad_offer_is_rejected_before_anything_is_written(
    device: Device, running: str, changes: dict[str, Any], reason: str
) -> None:
    device.power_on(running)
    result = offer(device, **changes)
    assert isinstance(result, Deferred) and result.startswith("rejected")
    assert device.commands[-1].state == "REJECTED" and reason in device.commands[-1].reason
    assert device.reports[-1].state == "rejected"
    assert device.phase() == "idle"
    assert not (device.root / "slot-B").exists()
    assert not device.rebooted.is_set()


def test_a_refused_release_is_refused_however_its_version_is_written(device: Device) -> None:
    state = StateFile(device.database.parent / "update" / "state.json")
    state.save(UpdateRecord(phase="rolled_back", refused=("2026.12.01",)))
    device.power_on(OLD)
    offer(device)  # 2026.12.1: the same release
    assert device.commands[-1].state == "REJECTED"
    assert "rolled back here before" in device.commands[-1].reason


def test_a_second_offer_while_one_is_in_hand_is_rejected(device: Device) -> None:
    device.why_not = "a sale is open"
    device.power_on(OLD)
    offer(device)
    offer(device, job="job-2")
    assert device.commands[-1].id == "job-2" and device.commands[-1].state == "REJECTED"
    # Reported too, so the hub closes that job's rollout target instead of waiting on it.
    refused = [r for r in device.reports if r.job == "job-2"]
    assert [r.state for r in refused] == ["rejected"] and "in hand" in refused[0].reason


def test_the_reboot_permit_blocks_sales_payments_in_doubt_and_a_busy_kiosk() -> None:
    state = {"sale": False, "doubt": False, "idle": 10.0}
    permit = RebootPermit(
        sale_open=lambda: state["sale"] is True,
        payment_in_doubt=lambda: state["doubt"] is True,
        idle_for=lambda: float(state["idle"]),
        local_now=lambda: datetime(2026, 5, 1, 12, 0),
        idle_s=60,
    )
    assert "in use 10 s ago" in permit()
    state["idle"] = 61.0
    assert permit() == ""
    state["doubt"] = True
    assert permit() == "a card payment is in doubt"
    state["sale"] = True
    assert permit() == "a sale is open"


def test_with_a_window_the_reboot_waits_for_it_but_never_for_an_idle_kiosk() -> None:
    now = {"at": datetime(2026, 5, 1, 12, 0)}
    permit = RebootPermit(
        sale_open=lambda: False,
        payment_in_doubt=lambda: False,
        idle_for=lambda: 0.0,
        local_now=lambda: now["at"],
        window=MaintenanceWindow.parse("23:30-01:00"),
    )
    assert permit() == "outside the maintenance window 23:30-01:00"
    now["at"] = datetime(2026, 5, 2, 0, 15)
    assert permit() == ""
    now["at"] = datetime(2026, 5, 2, 1, 0)
    assert permit() != ""
