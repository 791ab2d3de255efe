"""The download: ranges over real mTLS into a slot, checked, resumable, at low priority."""

from __future__ import annotations

import hashlib
import logging
import lzma
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.errors import UpdateError, UpdateRejectedError
from appliance.update.download import (
    DownloadProgress,
    HttpsChunkSource,
    Pacer,
    download,
    verify_slot,
)
from appliance.update.io_priority import (
    IOPRIO_CLASS_IDLE,
    NICE,
    lower_thread_priority,
    start_low_priority_thread,
    thread_io_priority,
)
from appliance.update.manifest import BundleManifest, Chunk, Part
from tests.mqtt.tls_broker import Pki
from tests.update.bundles import TEST_CHUNK, extract_payload
from tests.update.range_server import RangeServer
from tests.update.slot_files import PowerCutSlot

Bundle = tuple[Path, BundleManifest]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """The fleet CA, a server certificate for 127.0.0.1, and device certificates on demand."""
    return Pki.create(tmp_path / "pki")


@pytest.fixture
def payload(tmp_path: Path, bundle: Bundle) -> Path:
    """The bundle's payload.bin, as the hub serves it."""
    return extract_payload(bundle[0], tmp_path / "payload.bin")


@pytest.fixture
def server(payload: Path, pki: Pki) -> Iterator[RangeServer]:
    """The payload behind a real mTLS range server."""
    with RangeServer(payload, pki) as running:
        yield running


@pytest.fixture
def manifest(bundle: Bundle) -> BundleManifest:
    """The bundle's manifest."""
    return bundle[1]


@pytest.fixture
def slot(tmp_path: Path) -> PowerCutSlot:
    """An empty slot whose unflushed writes a test can throw away."""
    return PowerCutSlot(tmp_path / "slot")


def source_for(server: RangeServer, pki: Pki, *, timeout: float = 10.0) -> HttpsChunkSource:
    """A chunk source with a device's client certificate."""
    device = pki.client("kiosk-1")
    return HttpsChunkSource(
        server.url,
        ca_file=device.ca_cert,
        cert_file=device.cert,
        key_file=device.key,
        timeout=timeout,
    )


def assert_slot_holds_images(tmp_path: Path, slot: PowerCutSlot) -> None:
    """Each part of the slot is byte for byte the image it was built from."""
    for name in ("boot", "root"):
        assert slot.image(name).read_bytes() == (tmp_path / "images" / f"{name}.img").read_bytes()


def chunk_count(manifest: BundleManifest) -> int:
    """Chunks in the whole payload."""
    return sum(len(part.chunks) for part in manifest.parts)


def test_download_writes_each_part_exactly_over_one_connection(
    tmp_path: Path, manifest: BundleManifest, server: RangeServer, pki: Pki, slot: PowerCutSlot
) -> None:
    recorded: list[DownloadProgress] = []
    with source_for(server, pki) as source:
        final = download(manifest, source, slot, DownloadProgress(), record=recorded.append)
    assert_slot_holds_images(tmp_path, slot)
    assert final == DownloadProgress(chunk_count(manifest), manifest.payload_size)
    assert final.complete(manifest)
    assert recorded[-1] == final
    assert server.connections == 1  # kept alive across every chunk
    assert server.bytes_sent == manifest.payload_size  # each chunk fetched once
    assert slot.opened == ["boot", "root"]
    verify_slot(manifest, slot, record=recorded.append)
    assert recorded[-1] == final


def test_a_download_resumes_at_the_first_chunk_not_recorded(
    tmp_path: Path, manifest: BundleManifest, payload: Path, pki: Pki, slot: PowerCutSlot
) -> None:
    recorded: list[DownloadProgress] = []
    with RangeServer(payload, pki) as server, source_for(server, pki) as source:
        server.drop_from = 5  # the link goes after five chunks, for good
        with pytest.raises(UpdateError, match="chunk 5 of part root"):
            download(
                manifest,
                source,
                slot,
                DownloadProgress(),
                record=recorded.append,
                flush_every=2 * TEST_CHUNK,
            )
    slot.power_cut()
    kept = recorded[-1]
    assert 0 < kept.chunks_done <= 5 < chunk_count(manifest)
    with RangeServer(payload, pki) as server, source_for(server, pki) as source:
        final = download(manifest, source, slot, kept, record=recorded.append)
        # Exactly the chunks after the recorded ones came again, nothing before them.
        assert server.bytes_sent == manifest.payload_size - kept.bytes_done
        first = server.requests[0]
        assert first is not None and first[0] == kept.bytes_done
    assert final.complete(manifest)
    assert_slot_holds_images(tmp_path, slot)


def test_progress_is_recorded_only_once_its_chunks_are_flushed(
    tmp_path: Path, manifest: BundleManifest, payload: Path, slot: PowerCutSlot
) -> None:
    data = payload.read_bytes()
    images = {name: (tmp_path / "images" / f"{name}.img").read_bytes() for name in ("boot", "root")}
    durable_when_recorded: list[bool] = []

    def record(progress: DownloadProgress) -> None:
        # What a power cut would leave must hold every chunk the progress counts.
        counted = _chunks(manifest)[: progress.chunks_done]
        durable_when_recorded.append(
            all(
                slot.durable(name)[at : at + size] == images[name][at : at + size]
                for name, at, size in counted
            )
        )

    final = download(
        manifest, MemorySource(data), slot, DownloadProgress(), record=record, flush_every=1
    )
    assert final.complete(manifest)
    assert len(durable_when_recorded) == chunk_count(manifest)  # flush_every=1: each chunk
    assert all(durable_when_recorded)
    assert slot.flushes == chunk_count(manifest)


@pytest.mark.parametrize("stop_after", [1, 3, 6])
def test_a_power_cut_anywhere_loses_nothing_recorded(
    tmp_path: Path, manifest: BundleManifest, payload: Path, slot: PowerCutSlot, stop_after: int
) -> None:
    source = MemorySource(payload.read_bytes(), fail_after=stop_after)
    recorded = [DownloadProgress()]
    with pytest.raises(UpdateError):
        download(
            manifest,
            source,
            slot,
            DownloadProgress(),
            record=recorded.append,
            flush_every=3 * TEST_CHUNK,
        )
    slot.power_cut()
    final = download(
        manifest, MemorySource(payload.read_bytes()), slot, recorded[-1], record=recorded.append
    )
    assert final.complete(manifest)
    assert_slot_holds_images(tmp_path, slot)


def test_a_corrupted_chunk_is_fetched_again(
    tmp_path: Path, manifest: BundleManifest, server: RangeServer, pki: Pki, slot: PowerCutSlot
) -> None:
    third = manifest.parts[1].chunks[2]
    server.corrupt[third.offset] = 1
    with source_for(server, pki) as source:
        final = download(manifest, source, slot, DownloadProgress(), record=lambda p: None)
    assert final.complete(manifest)
    assert server.requests_at(third.offset) == 2
    assert server.requests_at(manifest.parts[1].chunks[1].offset) == 1
    assert_slot_holds_images(tmp_path, slot)


def test_a_chunk_that_never_matches_its_hash_rejects_the_release_after_four_fetches(
    manifest: BundleManifest, server: RangeServer, pki: Pki, slot: PowerCutSlot
) -> None:
    bad = manifest.parts[1].chunks[1]
    server.corrupt[bad.offset] = 100
    recorded: list[DownloadProgress] = []
    with (
        source_for(server, pki) as source,
        # Served wrong every time (a TLS link does not garble bytes): the release is bad.
        pytest.raises(UpdateRejectedError, match=r"do not match its hash \(4 fetches\)"),
    ):
        download(manifest, source, slot, DownloadProgress(), record=recorded.append)
    assert server.requests_at(bad.offset) == 4
    # Everything before it is kept, so the next try starts at the bad chunk.
    boot_chunks = len(manifest.parts[0].chunks)
    assert recorded[-1] == DownloadProgress(boot_chunks + 1, bad.offset)


def test_a_body_cut_short_is_fetched_again_on_a_new_connection(
    tmp_path: Path, manifest: BundleManifest, server: RangeServer, pki: Pki, slot: PowerCutSlot
) -> None:
    with source_for(server, pki) as source:
        source.read(0, 10)  # the connection is up and kept
        server.cut_bodies = 1
        final = download(manifest, source, slot, DownloadProgress(), record=lambda p: None)
    assert final.complete(manifest)
    assert server.connections == 2
    assert_slot_holds_images(tmp_path, slot)


def test_a_fresh_connection_cut_short_is_an_error_naming_it(server: RangeServer, pki: Pki) -> None:
    server.cut_bodies = 1
    with source_for(server, pki) as source, pytest.raises(UpdateError, match="IncompleteRead"):
        source.read(0, 5000)
    assert server.connections == 1  # no second try on a connection that never worked


def test_the_source_reads_exact_ranges(server: RangeServer, pki: Pki, payload: Path) -> None:
    data = payload.read_bytes()
    with source_for(server, pki) as source:
        assert source.read(0, 1) == data[:1]
        assert source.read(1000, 3000) == data[1000:4000]
        assert source.read(len(data) - 7, 7) == data[-7:]
    assert server.requests == [(0, 0), (1000, 3999), (len(data) - 7, len(data) - 1)]


def test_an_answer_without_a_range_is_refused(server: RangeServer, pki: Pki) -> None:
    server.ignore_range = True
    with source_for(server, pki) as source, pytest.raises(UpdateError, match="answered 200 OK"):
        source.read(0, 100)


def test_an_unsatisfiable_range_is_refused(server: RangeServer, pki: Pki) -> None:
    server.refuse_ranges = True
    with source_for(server, pki) as source, pytest.raises(UpdateError, match="answered 416"):
        source.read(0, 100)


def test_a_range_shorter_than_asked_is_refused(server: RangeServer, pki: Pki) -> None:
    size = len(server.data)
    with source_for(server, pki) as source, pytest.raises(UpdateError, match="instead"):
        source.read(size - 10, 20)  # the server clips the range to the file


def test_a_server_that_does_not_answer_times_out(server: RangeServer, pki: Pki) -> None:
    server.stall = True
    with (
        source_for(server, pki, timeout=0.3) as source,
        pytest.raises(UpdateError, match=r"no answer within 0\.3 s"),
    ):
        source.read(0, 100)


def test_a_client_without_a_fleet_certificate_is_turned_away(
    tmp_path: Path, server: RangeServer, pki: Pki
) -> None:
    stranger = Pki.create(tmp_path / "other-pki").client("kiosk-1")
    device = pki.client("kiosk-1")
    source = HttpsChunkSource(
        server.url, ca_file=device.ca_cert, cert_file=stranger.cert, key_file=stranger.key
    )
    with source, pytest.raises(UpdateError, match="bytes 0-99"):
        source.read(0, 100)
    assert server.requests == []


def test_a_server_the_fleet_ca_did_not_sign_is_refused(
    tmp_path: Path, server: RangeServer, pki: Pki
) -> None:
    device = pki.client("kiosk-1")
    other_ca = Pki.create(tmp_path / "other-pki").ca_cert
    source = HttpsChunkSource(
        server.url, ca_file=other_ca, cert_file=device.cert, key_file=device.key
    )
    with source, pytest.raises(UpdateError, match="CERTIFICATE_VERIFY_FAILED"):
        source.read(0, 100)


def test_only_an_https_url_is_taken(pki: Pki) -> None:
    device = pki.client("kiosk-1")
    with pytest.raises(UpdateError, match="not an https URL"):
        HttpsChunkSource(
            "http://127.0.0.1/payload.bin",
            ca_file=device.ca_cert,
            cert_file=device.cert,
            key_file=device.key,
        )


def test_progress_is_reported_after_each_chunk(
    manifest: BundleManifest, payload: Path, slot: PowerCutSlot
) -> None:
    heard: list[tuple[int, int]] = []
    download(
        manifest,
        MemorySource(payload.read_bytes()),
        slot,
        DownloadProgress(),
        record=lambda p: None,
        on_progress=lambda done, total: heard.append((done, total)),
    )
    total = manifest.payload_size
    ends = [chunk.offset + chunk.size for part in manifest.parts for chunk in part.chunks]
    assert heard == [(0, total)] + [(end, total) for end in ends]


def test_the_pace_hears_each_chunks_compressed_bytes(
    manifest: BundleManifest, payload: Path, slot: PowerCutSlot
) -> None:
    paced: list[int] = []
    download(
        manifest, MemorySource(payload.read_bytes()), slot, DownloadProgress(),
        record=lambda p: None, pace=paced.append,
    )  # fmt: skip
    assert paced == [chunk.size for part in manifest.parts for chunk in part.chunks]


class Clock:
    """A monotonic clock that only moves when a test (or a wait) moves it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(round(seconds, 6))
        self.now += seconds
        return False


def test_the_pacer_waits_only_for_what_ran_ahead_of_the_pace() -> None:
    clock = Clock()
    pacer = Pacer(1000, wait=clock.wait, monotonic=lambda: clock.now)
    pacer(500)  # the first chunk counts as on pace
    assert clock.waits == []
    pacer(500)  # 1000 bytes at once, 0.5 s after a start 0.5 s back: 0.5 s ahead
    assert clock.waits == [0.5]
    clock.now += 2.0  # the link was slow: behind the pace, no wait
    pacer(1000)
    assert clock.waits == [0.5]
    pacer(2500)  # 4000 bytes by now + 0, due at start + 4.0: 1.5 s ahead
    assert clock.waits == [0.5, 1.5]


def test_a_stop_during_a_pace_wait_ends_the_waiting() -> None:
    waits: list[float] = []
    pacer = Pacer(10, wait=lambda s: waits.append(s) or True, monotonic=lambda: 0.0)
    pacer(10)
    pacer(100)
    pacer(100)
    assert len(waits) == 1  # once stopped, the download is not held back again


def test_a_stop_ends_the_download_cleanly_with_its_chunks_recorded(
    tmp_path: Path, manifest: BundleManifest, payload: Path, slot: PowerCutSlot
) -> None:
    source = MemorySource(payload.read_bytes())
    recorded: list[DownloadProgress] = []
    final = download(
        manifest,
        source,
        slot,
        DownloadProgress(),
        record=recorded.append,
        should_stop=lambda: source.reads == 3,
    )
    assert final.chunks_done == 3
    assert not final.complete(manifest)
    assert recorded == [final]  # flushed and recorded on the way out
    slot.power_cut()
    rest = MemorySource(payload.read_bytes())
    download(manifest, rest, slot, final, record=recorded.append)
    assert rest.reads == chunk_count(manifest) - 3
    assert_slot_holds_images(tmp_path, slot)


def test_a_chunk_that_decompresses_to_more_than_its_size_is_refused_with_bounded_memory(
    tmp_path: Path, slot: PowerCutSlot
) -> None:
    bomb = lzma.compress(bytes(64 * 1024 * 1024), format=lzma.FORMAT_XZ, preset=0)
    chunk = Chunk(
        offset=0, size=len(bomb), sha256=hashlib.sha256(bomb).hexdigest(), image_size=1000
    )
    part = Part(name="root", size=1000, sha256="0" * 64, chunks=[chunk])
    manifest = _manifest([part], bomb)
    tracemalloc.start()
    try:
        with pytest.raises(UpdateRejectedError, match="more than its 1000 bytes"):
            download(manifest, MemorySource(bomb), slot, DownloadProgress(), record=lambda p: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024
    assert slot.durable("root") == b""  # nothing of it reached the slot


def test_a_chunk_that_decompresses_to_less_than_its_size_is_refused(slot: PowerCutSlot) -> None:
    packed = lzma.compress(b"x" * 10, format=lzma.FORMAT_XZ)
    chunk = Chunk(
        offset=0, size=len(packed), sha256=hashlib.sha256(packed).hexdigest(), image_size=11
    )
    manifest = _manifest([Part(name="root", size=11, sha256="0" * 64, chunks=[chunk])], packed)
    with pytest.raises(UpdateRejectedError, match="to 10 bytes, not 11"):
        download(manifest, MemorySource(packed), slot, DownloadProgress(), record=lambda p: None)


def test_a_progress_beyond_the_manifest_is_refused(
    manifest: BundleManifest, payload: Path, slot: PowerCutSlot
) -> None:
    too_far = DownloadProgress(chunk_count(manifest) + 1, 0)
    with pytest.raises(UpdateError, match="chunks done"):
        download(manifest, MemorySource(payload.read_bytes()), slot, too_far, record=lambda p: None)


def test_verify_slot_catches_bytes_altered_after_the_download(
    manifest: BundleManifest, payload: Path, slot: PowerCutSlot
) -> None:
    recorded: list[DownloadProgress] = []
    download(
        manifest,
        MemorySource(payload.read_bytes()),
        slot,
        DownloadProgress(),
        record=recorded.append,
    )
    verify_slot(manifest, slot, record=recorded.append)
    with slot.image("root").open("r+b") as image:
        image.seek(TEST_CHUNK + 5)
        byte = image.read(1)
        image.seek(TEST_CHUNK + 5)
        image.write(bytes([byte[0] ^ 1]))
    with pytest.raises(
        UpdateRejectedError, match=r"does not hold the image of release 2026\.12\.1"
    ):
        verify_slot(manifest, slot, record=recorded.append)
    assert recorded[-1] == DownloadProgress()  # the next try downloads it all again


def test_the_download_thread_lowers_its_own_priority_only() -> None:
    seen: dict[str, object] = {}

    def work() -> None:
        seen["lowered"] = lower_thread_priority()
        seen["io"] = thread_io_priority()
        seen["nice"] = _nice(threading.get_native_id())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == {"lowered": True, "io": (IOPRIO_CLASS_IDLE, 0), "nice": NICE}
    # The thread that started it (the one that sells) keeps its priority.
    assert thread_io_priority()[0] != IOPRIO_CLASS_IDLE
    assert _nice(threading.get_native_id()) < NICE


def test_start_low_priority_thread_runs_its_target_lowered() -> None:
    seen: list[tuple[tuple[int, int], int]] = []
    thread = start_low_priority_thread(
        lambda: seen.append((thread_io_priority(), _nice(threading.get_native_id()))),
        name="update-download",
    )
    thread.join()
    assert thread.name == "update-download"
    assert seen == [((IOPRIO_CLASS_IDLE, 0), NICE)]


def test_a_refused_priority_change_is_logged_and_the_download_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("appliance.update.io_priority._ioprio_set", refuse)
    monkeypatch.setattr("appliance.update.io_priority.os.setpriority", refuse)
    # Whatever level an earlier test in the same worker left on these loggers.
    caplog.set_level(logging.DEBUG, logger="appliance.update.io_priority")
    assert lower_thread_priority() is False
    assert "keeps its I/O priority" in caplog.text
    assert "keeps its CPU priority" in caplog.text


class MemorySource:
    """Payload bytes in memory, counting reads; fails every read after `fail_after`."""

    def __init__(self, data: bytes, *, fail_after: int | None = None) -> None:
        self.data = data
        self.fail_after = fail_after
        self.reads = 0

    def read(self, offset: int, size: int) -> bytes:
        """The range, or UpdateError once the link is gone."""
        if self.fail_after is not None and self.reads >= self.fail_after:
            raise UpdateError("the link is gone")
        self.reads += 1
        return self.data[offset : offset + size]


def _chunks(manifest: BundleManifest) -> list[tuple[str, int, int]]:
    """(part, image offset, image size) of every chunk, in payload order."""
    out: list[tuple[str, int, int]] = []
    for part in manifest.parts:
        at = 0
        for chunk in part.chunks:
            out.append((part.name, at, chunk.image_size))
            at += chunk.image_size
    return out


def _manifest(parts: list[Part], payload: bytes) -> BundleManifest:
    return BundleManifest(
        version="2026.12.1",
        image_version="v",
        min_version="2026.1",
        created_at="2026-12-01T00:00:00+00:00",
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        parts=parts,
    )


def _nice(tid: int) -> int:
    """A thread's nice value, field 19 of /proc/self/task/<tid>/stat."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])
