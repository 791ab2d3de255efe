"""The update job on the device: command, checks, download, wait, try, gate, commit.

The `update` command's action (on the command worker) checks the signed manifest and the
versions, records "offered" and returns a deferred result: the job stays IN_PROGRESS and
this module publishes its final CommandUpdate later (SUCCEEDED "committed V", FAILED
"rolled back: why", REJECTED "why"). Its own thread then downloads into the inactive
slot, verifies it, waits until the kiosk may reboot (appliance.update.permit), holds new
sales, snapshots the database, records "trying", arms the try and reboots. After the
reboot, appliance.update.boot tells the try boot apart; here the health gate runs and
commits, or records why not and reboots to the old slot. Every state change goes to the
hub as an UpdateReport, and the job in hand is reported again at each hub connect.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance.errors import UpdateError, UpdateRejectedError
from appliance.mqtt.commands import Deferred
from appliance.mqtt.payloads import CommandUpdate, JobState, UpdateReport, UpdateState
from appliance.update.boot import UpdateBoot, take_snapshot
from appliance.update.download import (
    DownloadProgress,
    HttpsChunkSource,
    Pacer,
    download,
    verify_slot,
)
from appliance.update.gate import HealthGate
from appliance.update.io_priority import start_low_priority_thread
from appliance.update.manifest import BundleManifest, release_key, verify_manifest
from appliance.update.slots import SlotWriter
from appliance.update.state import ACTIVE, UpdateRecord

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often the reboot permit is asked again
RETRY_SECONDS = (10.0, 30.0, 60.0, 300.0, 900.0)  # waits after failed downloads, then the last
MAX_BAD_IMAGES = 2  # a slot that reads back wrong this often: the bundle is refused
# Failed downloads in a row without a chunk gained (about an hour of waits): a URL that
# answers 404, or a link that never works, ends the job instead of holding it forever.
MAX_DOWNLOAD_ATTEMPTS = 8
MAX_TRY_STARTS = 3  # snapshots or arms that fail in a row before the job is rejected
REPORT_STEP = 0.05  # a downloading report every 5 % of the payload ...
REPORT_EVERY_S = 1.0  # ... and at most once a second
HOLD_REASON = "restarting for a software update"
GATE_HOLD_REASON = "finishing a software update"

# What each recorded phase is to the hub: the report's state, and the command's final state.
_REPORTED: Mapping[str, UpdateState] = {
    "offered": "offered",
    "downloading": "downloading",
    "downloaded": "downloaded",
    "trying": "trying",
    "gate_failed": "trying",
    "committed": "committed",
    "rolled_back": "rolled_back",
    "rejected": "rejected",
}
_FINAL: Mapping[str, JobState] = {
    "committed": "SUCCEEDED",
    "rolled_back": "FAILED",
    "rejected": "REJECTED",
}


class Fetch(Protocol):
    """Downloads the payload into the slot from `progress` on, then reads the slot back.

    Blocking, on the updater's thread; `record` keeps a progress durably. UpdateRejectedError
    when the release itself is bad or the slot does not hold it after all (the progress is
    then recorded as nothing done); UpdateError for what a later try may get past.
    """

    def __call__(
        self,
        manifest: BundleManifest,
        url: str,
        slot: SlotWriter,
        progress: DownloadProgress,
        *,
        record: Callable[[DownloadProgress], None],
        on_progress: Callable[[int, int], None],
        should_stop: Callable[[], bool],
    ) -> None: ...


def https_fetch(*, ca_file: Path, cert_file: Path, key_file: Path, bytes_per_s: float = 0) -> Fetch:
    """The real download: ranges over HTTPS with the device's client certificate.

    `bytes_per_s` paces it (0: as fast as it goes).
    """

    def fetch(
        manifest: BundleManifest,
        url: str,
        slot: SlotWriter,
        progress: DownloadProgress,
        *,
        record: Callable[[DownloadProgress], None],
        on_progress: Callable[[int, int], None],
        should_stop: Callable[[], bool],
    ) -> None:
        source = HttpsChunkSource(url, ca_file=ca_file, cert_file=cert_file, key_file=key_file)

        def wait(seconds: float) -> bool:  # a pace wait that a stop cuts short
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0 and not should_stop():
                time.sleep(min(0.25, left))
            return should_stop()

        pace = Pacer(bytes_per_s, wait=wait) if bytes_per_s > 0 else (lambda size: None)
        with source:
            done = download(
                manifest,
                source,
                slot,
                progress,
                record=record,
                on_progress=on_progress,
                should_stop=should_stop,
                pace=pace,
            )
        if done.complete(manifest):
            verify_slot(manifest, slot, record=record)

    return fetch


class Updater:
    """The update job: the command's action, its worker, the gate, and the reports.

    `action` runs on the command worker; the download, the wait and the reboot on this
    updater's own thread; the gate on another; `connected` on whatever thread tells of a
    new hub session. The publishers must be thread-safe.
    """

    def __init__(
        self,
        *,
        device: str,
        boot: UpdateBoot,
        release_key: Ed25519PublicKey | None,
        running: str,
        fetch: Fetch,
        publish_report: Callable[[UpdateReport], None],
        publish_command: Callable[[CommandUpdate], None],
        may_reboot: Callable[[], str],
        hold_sales: Callable[[str], bool],
        gate: HealthGate,
        poll_s: float = POLL_SECONDS,
        retry_s: tuple[float, ...] = RETRY_SECONDS,
    ) -> None:
        self._device = device
        self._boot = boot
        self._state = boot.state
        self._key = release_key
        self._running = running
        self._fetch = fetch
        self._publish_report = publish_report
        self._publish_command = publish_command
        self._may_reboot = may_reboot
        self._hold_sales = hold_sales
        self._gate = gate
        self._poll = poll_s
        self._retry = retry_s
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one job started at a time
        self._threads: list[threading.Thread] = []
        self._last_report = (-1.0, -1.0)  # (time, share) of the last downloading report

    # -- the command worker's thread ---------------------------------------------------

    def action(self, args: dict[str, Any]) -> str:
        """The `update` command: refuse it (REJECTED, published here) or start the job."""
        job = str(args.get("command_id", ""))
        version = str(args.get("version", ""))
        with self._lock:
            record = self._state.load()
            if record.phase in ACTIVE and record.job != job:
                return self._reject_other(job, version, record)
            if self._boot.mode != "normal" and record.phase != "committed":
                # Until the try commits, the slot a download writes is the one the firmware
                # falls back to; once committed, that slot is the spare again.
                return self._reject(
                    job,
                    version,
                    f"the try boot of {record.version} is not over; offer it again later",
                )
            try:
                manifest = self._check(args, record)
            except UpdateRejectedError as err:
                return self._reject(job, version, str(err))
            record = self._state.save(
                UpdateRecord(
                    job=job,
                    version=manifest.version,
                    url=str(args["url"]),
                    manifest=str(args["manifest"]),
                    signature=str(args["signature"]),
                    phase="offered",
                    total=manifest.payload_size,
                    refused=record.refused,
                )
            )
            self._report(record)
            self._start(self._work, "update-download", low_priority=True)
        return Deferred(f"update to {manifest.version} offered")

    def _check(self, args: dict[str, Any], record: UpdateRecord) -> BundleManifest:
        """The verified manifest, or UpdateRejectedError with the reason."""
        if self._key is None:
            raise UpdateRejectedError("no release key configured")
        for name in ("version", "url", "manifest", "signature"):
            if not isinstance(args.get(name), str) or not args[name]:
                raise UpdateRejectedError(f"args: {name} (a string) is missing")
        if not args["url"].startswith("https://"):
            raise UpdateRejectedError(f"args: url {args['url']!r} is not https")
        try:
            signature = base64.b64decode(args["signature"], validate=True)
        except (binascii.Error, ValueError):
            raise UpdateRejectedError("args: signature is not base64") from None
        manifest = verify_manifest(args["manifest"].encode("utf-8"), signature, self._key)
        if manifest.version != args["version"]:
            raise UpdateRejectedError(
                f"the manifest is for {manifest.version}, not {args['version']}"
            )
        refused = release_key(manifest.version)
        if any(release_key(version) == refused for version in record.refused):
            raise UpdateRejectedError(
                f"{manifest.version} rolled back here before; not tried again"
            )
        running = release_key(self._running)
        if release_key(manifest.version) <= running:
            raise UpdateRejectedError(f"{manifest.version} is not newer than {self._running}")
        if running < release_key(manifest.min_version):
            raise UpdateRejectedError(
                f"{self._running} is older than {manifest.min_version}, the oldest release"
                f" {manifest.version} updates from"
            )
        return manifest

    def _reject(self, job: str, version: str, reason: str) -> str:
        log.warning("update %s (job %s) rejected: %s", version, job, reason)
        self._send_report(
            UpdateReport(
                device=self._device,
                job=job,
                version=version,
                state="rejected",
                running=self._running,
                reason=reason,
            )
        )
        self._send_command(CommandUpdate(id=job, state="REJECTED", reason=reason))
        return Deferred(f"rejected: {reason}")

    def _reject_other(self, job: str, version: str, record: UpdateRecord) -> str:
        # Reported like any refusal, so the hub closes that job's rollout target; the hub
        # keeps showing the job in hand as the device's update state.
        return self._reject(
            job, version, f"the update to {record.version} (job {record.job}) is in hand"
        )

    # -- start and stop (the main thread) ----------------------------------------------

    def open(self) -> None:
        """Resume a job left downloading or waiting; run the gate in a try boot."""
        if self._boot.mode == "gating":
            self._start(self._run_gate, "update-gate")
        elif self._state.load().phase in ("offered", "downloading", "downloaded"):
            self._start(self._work, "update-download", low_priority=True)

    def close(self) -> None:
        """Stop the download and the waits (the job resumes at the next start); safe twice."""
        self._stop.set()
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()

    def _start(self, target: Callable[[], None], name: str, *, low_priority: bool = False) -> None:
        if low_priority:  # the download: idle I/O class and nice 19, so selling goes first
            self._threads.append(start_low_priority_thread(target, name=name))
            return
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- any thread (a new hub session) ------------------------------------------------

    def connected(self) -> None:
        """Tell the hub again where the job in hand stands: a report may have been lost."""
        record = self._state.load()
        if record.phase == "idle" or not record.job:
            return
        self._report(record)
        if (final := _FINAL.get(record.phase)) is not None:
            self._send_command(CommandUpdate(id=record.job, state=final, reason=_why(record)))

    # -- the updater's thread ----------------------------------------------------------

    def _work(self) -> None:
        """Download, verify, wait for a quiet moment, then reboot into the try."""
        try:
            record = self._state.load()
            if record.phase in ("offered", "downloading") and not self._download():
                return
            for attempt in range(1, MAX_TRY_STARTS + 1):
                if not self._hold_when_quiet():
                    return
                try:
                    self._try()
                    return
                except Exception as err:
                    self._hold_sales("")
                    if self._state.load().phase == "trying":
                        # The reboot may happen all the same: the next start finds out
                        # which slot came up (UpdateBoot.start) and ends the job.
                        log.exception("update: the reboot into the try failed")
                        return
                    if attempt == MAX_TRY_STARTS:
                        self._end("rejected", f"could not start the try: {err}")
                        return
                    wait = self._retry[min(attempt - 1, len(self._retry) - 1)]
                    log.warning("update: could not start the try (%s); again in %g s", err, wait)
                    self._stop.wait(wait)
        except Exception as err:  # the job ends; the kiosk goes on selling on this slot
            log.exception("update worker failed")
            self._hold_sales("")
            if self._state.load().phase != "trying":  # never tried: nothing rolled back
                self._end("rejected", f"the update failed: {err}")

    def _download(self) -> bool:
        """The payload on the slot and read back right; False when stopped or refused."""
        attempt = bad_images = 0
        while not self._stop.is_set():
            record = self._state.change(phase="downloading")
            self._report(record)
            manifest = _manifest_of(record)
            try:
                self._fetch(
                    manifest,
                    record.url,
                    self._boot.slots.writer(),
                    DownloadProgress(record.chunks_done, record.done),
                    record=self._record_progress,
                    on_progress=self._progress,
                    should_stop=self._stop.is_set,
                )
            except UpdateRejectedError as err:
                bad_images += 1
                if bad_images >= MAX_BAD_IMAGES:
                    self._end("rejected", str(err))
                    return False
                log.warning("update %s: %s; downloading again", record.version, err)
                continue
            except UpdateError as err:
                if self._state.load().chunks_done > record.chunks_done:
                    attempt = 0  # it got further: a flaky link, not a dead end
                attempt += 1
                if attempt >= MAX_DOWNLOAD_ATTEMPTS:
                    self._end("rejected", f"the download failed {attempt} times in a row: {err}")
                    return False
                wait = self._retry[min(attempt - 1, len(self._retry) - 1)]
                log.warning(
                    "update %s: download stopped (%s); again in %g s", record.version, err, wait
                )
                self._stop.wait(wait)
                continue
            if self._stop.is_set():
                return False
            record = self._state.change(phase="downloaded", done=record.total)
            self._report(record)
            return True
        return False

    def _record_progress(self, progress: DownloadProgress) -> None:
        self._state.change(chunks_done=progress.chunks_done, done=progress.bytes_done)

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        share = done / total if total else 1.0
        last_time, last_share = self._last_report
        if share - last_share < REPORT_STEP or now - last_time < REPORT_EVERY_S:
            return
        self._last_report = (now, share)
        record = self._state.load()
        self._report(msgspec.structs.replace(record, done=done, total=total))

    def _hold_when_quiet(self) -> bool:
        """Hold new sales once the permit allows a reboot; False when stopped first."""
        while not self._stop.is_set():
            if not self._may_reboot():
                # Until the main loop applied the hold, scans queued for it may still start
                # a sale the permit cannot see: only an applied hold lets the reboot go.
                if not self._hold_sales(HOLD_REASON):
                    log.warning("update: the sales hold was not applied in time; asking again")
                # A sale may have started between the question and the hold.
                elif not (why := self._may_reboot()):
                    return True
                else:
                    log.info("update: a reboot waits: %s", why)
                self._hold_sales("")
            self._stop.wait(self._poll)
        return False

    def _try(self) -> None:
        """Snapshot the database, arm the try, record it and reboot.

        A failure before "trying" is recorded leaves the job downloaded (the default slot
        is unchanged: arming only names the slot a try boot would start).
        """
        slots = self._boot.slots
        snapshot = self._boot.snapshot_path
        take_snapshot(self._boot.database, snapshot)
        slots.arm_try()
        record = self._state.change(
            phase="trying",
            tried_from=slots.booted(),
            tried_from_version=self._running,
            snapshot=str(snapshot),
            gate_starts=0,
            reason="",
        )
        self._report(record)
        log.warning("update %s: rebooting into slot %s to try it", record.version, slots.inactive())
        slots.reboot_to_try()

    # -- the gate's thread (a try boot) ------------------------------------------------

    def _run_gate(self) -> None:
        """Commit when the gate passes; else record why and reboot to the old slot."""
        reason = self._gate.wait(self._stop)
        if self._stop.is_set() and reason:
            return  # stopping: the next start of the try boot runs the gate again
        if reason:
            record = self._state.load()
            self._report(msgspec.structs.replace(record, reason=reason))
            self._boot.fail(reason)
            return
        try:
            record = self._boot.commit()
        except Exception as err:  # the commit not written: the old slot is still the default
            log.exception("update: commit failed")
            self._boot.fail(f"the commit could not be written: {err}")
            return
        self._hold_sales("")
        self._report(record)
        self._send_command(CommandUpdate(id=record.job, state="SUCCEEDED", reason=_why(record)))

    # -- reports -----------------------------------------------------------------------

    def _end(self, phase: str, reason: str) -> None:
        record = self._state.change(phase=phase, reason=reason)
        self._report(record)
        final = _FINAL[record.phase]
        self._send_command(CommandUpdate(id=record.job, state=final, reason=_why(record)))

    def _report(self, record: UpdateRecord) -> None:
        self._send_report(
            UpdateReport(
                device=self._device,
                job=record.job,
                version=record.version,
                state=_REPORTED[record.phase],
                running=self._running,
                done=record.done,
                total=record.total,
                reason=record.reason,
            )
        )

    def _send_report(self, report: UpdateReport) -> None:
        try:
            self._publish_report(report)
        except Exception:  # the next connect sends the job's state again
            log.exception("could not publish the update report (%s)", report.state)

    def _send_command(self, update: CommandUpdate) -> None:
        try:
            self._publish_command(update)
        except Exception:
            log.exception("could not publish %s for update job %s", update.state, update.id)


def _why(record: UpdateRecord) -> str:
    """The final CommandUpdate's reason for a recorded phase."""
    if record.phase == "committed":
        return f"committed {record.version}"
    if record.phase == "rolled_back":
        return f"rolled back: {record.reason}"
    return record.reason


def _manifest_of(record: UpdateRecord) -> BundleManifest:
    """The recorded manifest (verified when the command came; decoded again, not re-verified)."""
    return msgspec.json.decode(record.manifest.encode("utf-8"), type=BundleManifest)
