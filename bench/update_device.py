"""The device's side of the update download, run as the updater runs it, again and again."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.mqtt.signing import load_public_key
from appliance.settings import UpdateSettings
from appliance.update.download import DownloadProgress
from appliance.update.io_priority import start_low_priority_thread, thread_io_priority
from appliance.update.manifest import verify_manifest
from appliance.update.slots import DirectorySlots
from appliance.update.state import StateFile
from appliance.update.updater import https_fetch
from bench.update_release import Pki, Release

JOIN_S = 60.0  # a stop is seen between chunks: one chunk's fetch and write at most


@dataclass(frozen=True, slots=True)
class Fetching:
    """What a process needs to download the release as a device: where, with what, into what."""

    url: str
    manifest_json: str
    signature_hex: str
    public_key: str
    ca: str
    cert: str
    key: str
    slot_root: str

    @classmethod
    def of(cls, release: Release, pki: Pki, url: str, slot_root: Path) -> Fetching:
        """The release at `url`, fetched with the device's certificate into `slot_root`."""
        return cls(
            url=url,
            manifest_json=release.manifest_json,
            signature_hex=release.signature.hex(),
            public_key=str(release.public_key),
            ca=str(pki.ca),
            cert=str(pki.device_cert),
            key=str(pki.device_key),
            slot_root=str(slot_root),
        )


class Downloads:
    """The release's download, run again and again on a low-priority thread while `running`."""

    def __init__(self, fetching: Fetching) -> None:
        # As the device takes the manifest from the update command: checked against the key.
        key = load_public_key(Path(fetching.public_key))
        signature = bytes.fromhex(fetching.signature_hex)
        self.manifest = verify_manifest(fetching.manifest_json.encode(), signature, key)
        self._url = fetching.url
        self._fetch = https_fetch(
            ca_file=Path(fetching.ca),
            cert_file=Path(fetching.cert),
            key_file=Path(fetching.key),
            # At the pace a kiosk downloads by default, as the updater runs it.
            bytes_per_s=UpdateSettings().download_kib_s * 1024,
        )
        root = Path(fetching.slot_root)
        self._slot = DirectorySlots(root).writer()
        self._state = StateFile(root / "update" / "state.json")
        self._progress = DownloadProgress()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.payload_bytes = 0  # fetched, over every run
        self.busy_s = 0.0  # inside the fetch: download, flushes and the read-back check
        self.completed = 0
        self.io_priority: tuple[int, int] | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The download runs on its own thread through the block; its error is raised after."""
        self._stop.clear()
        thread = start_low_priority_thread(self._loop, name="update-download")
        try:
            yield
        finally:
            self._stop.set()
            thread.join(JOIN_S)
        if thread.is_alive():
            raise RuntimeError("the download did not stop")
        if self._error is not None:
            raise RuntimeError(f"the download failed: {self._error}") from self._error

    def whole(self) -> float:
        """Seconds for one complete download from chunk 0, with nothing else running."""
        self._progress = DownloadProgress()
        completed = self.completed
        started = time.perf_counter()
        with self.running():
            while self.completed == completed and self._error is None:
                time.sleep(0.01)
        return time.perf_counter() - started

    def stats(self) -> dict[str, Any]:
        """Bytes, time and runs so far, and the downloading thread's I/O priority."""
        return {
            "payload_bytes": self.payload_bytes,
            "busy_s": round(self.busy_s, 3),
            "completed_runs": self.completed,
            "io_priority_class_level": self.io_priority,
        }

    # -- the downloading thread ------------------------------------------------------------

    def _loop(self) -> None:
        self.io_priority = thread_io_priority()
        try:
            while not self._stop.is_set():
                self._once()
        except BaseException as err:
            self._error = err

    def _once(self) -> None:
        seen: list[int] = []
        started = time.perf_counter()
        self._fetch(
            self.manifest,
            self._url,
            self._slot,
            self._progress,
            record=self._record,
            on_progress=lambda done, _total: seen.append(done),
            should_stop=self._stop.is_set,
        )
        self.busy_s += time.perf_counter() - started
        if seen:
            self.payload_bytes += seen[-1] - seen[0]
        if self._progress.complete(self.manifest):
            self.completed += 1
            self._progress = DownloadProgress()  # the next run fetches it all again

    def _record(self, progress: DownloadProgress) -> None:
        # Kept as the updater keeps it: durably, once the slot flushed what it counts.
        self._progress = progress
        self._state.change(chunks_done=progress.chunks_done, done=progress.bytes_done)
