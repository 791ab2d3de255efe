"""The download: a verified manifest's chunks fetched by range, checked, and written into the slot.

Each chunk is fetched alone (one range request), checked against its SHA-256 from the
signed manifest before a byte of it is used, decompressed with a bound, and written at its
place in its part. Nothing but the chunk in hand is ever held, in memory or on the data
partition. Progress is counted in whole chunks and handed to the caller to keep durably,
only after the slot has flushed them: after a power cut the download resumes at the first
chunk not counted, and never skips one that did not reach the card.

Threads: `download` and `verify_slot` block for the whole transfer; the caller runs them on
a thread of their own (appliance.update.io_priority.start_low_priority_thread), never on
one that sells. HttpsChunkSource is used by one thread at a time.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import lzma
import ssl
import time
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol

from appliance.errors import UpdateError, UpdateRejectedError
from appliance.update.manifest import BundleManifest, Chunk, Part

if TYPE_CHECKING:
    from appliance.update.slots import SlotWriter

log = logging.getLogger(__name__)

FLUSH_EVERY = 16 * 1024 * 1024  # bytes of image written between flushes (and records)
ATTEMPTS = 4  # fetches of one chunk: the first and three more
TIMEOUT = 30.0  # seconds for a connection or any read on it
# Bounds the xz decoder whatever the chunk's header asks for; a CHUNK_SIZE dictionary
# needs a few MiB.
DECODER_MEMORY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """How far a download got: whole chunks on the card, in manifest order (the caller keeps it)."""

    chunks_done: int = 0
    bytes_done: int = 0  # of payload.bin: the compressed bytes of those chunks

    def complete(self, manifest: BundleManifest) -> bool:
        """Whether every chunk of `manifest` is done."""
        return self.chunks_done == sum(len(part.chunks) for part in manifest.parts)


class ChunkSource(Protocol):
    """Where the payload's bytes come from; blocking, used by one thread at a time."""

    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes of payload.bin from `offset` (one range), or UpdateError saying why not."""
        ...


@dataclass(frozen=True, slots=True)
class _Step:
    """One chunk to fetch, with its part and where its bytes go in the part's image."""

    index: int  # in the whole payload, as DownloadProgress counts
    part: Part
    chunk: Chunk
    image_offset: int


def download(
    manifest: BundleManifest,
    source: ChunkSource,
    slot: SlotWriter,
    progress: DownloadProgress,
    *,
    record: Callable[[DownloadProgress], None],
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    should_stop: Callable[[], bool] = lambda: False,
    flush_every: int = FLUSH_EVERY,
    pace: Callable[[int], None] = lambda size: None,
) -> DownloadProgress:
    """Fetch the chunks after `progress` into `slot`; the progress recorded last.

    `record` keeps a progress durably (after the slot flushed what it counts);
    `on_progress(done, total)` hears payload bytes after each chunk; `should_stop` is asked
    before each chunk, and a stop returns early with the progress so far; `pace(n)` hears
    the bytes of each chunk written and may wait (Pacer). UpdateError when a
    chunk cannot be had in ATTEMPTS fetches; UpdateRejectedError when a chunk never matches
    its hash, or one that does is not what the manifest says (the release itself is bad).
    """
    steps = _steps(manifest)
    done = progress.chunks_done
    if not 0 <= done <= len(steps):
        raise UpdateError(f"the progress says {done} chunks done of {len(steps)}")
    bytes_done = _payload_end(steps[done - 1]) if done else 0
    recorded = DownloadProgress(done, bytes_done)
    total = manifest.payload_size
    on_progress(bytes_done, total)
    handles: dict[str, BinaryIO] = {}
    unflushed = 0

    def checkpoint() -> None:
        nonlocal recorded, unflushed
        if done == recorded.chunks_done:
            return
        for handle in handles.values():
            handle.flush()
        slot.flush()
        # Only now: a chunk counted before it is on the card would be skipped for good
        # by the resume after a power cut.
        recorded = DownloadProgress(done, bytes_done)
        record(recorded)
        unflushed = 0

    with ExitStack() as stack:
        try:
            for step in steps[done:]:
                if should_stop():
                    log.info("download of %s stopped at chunk %d", manifest.version, done)
                    break
                data = _fetch(source, step)
                name = step.part.name
                if name not in handles:
                    handles[name] = stack.enter_context(slot.open_part(name, step.part.size))
                handle = handles[name]
                handle.seek(step.image_offset)
                handle.write(data)
                done, bytes_done = step.index + 1, _payload_end(step)
                unflushed += len(data)
                on_progress(bytes_done, total)
                pace(step.chunk.size)
                if unflushed >= flush_every:
                    checkpoint()
        except BaseException:
            # Keep what did reach the slot, so the next try starts after it.
            try:
                checkpoint()
            except Exception as err:
                log.warning("download of %s: progress not kept: %s", manifest.version, err)
            raise
        checkpoint()
    return recorded


def verify_slot(
    manifest: BundleManifest, slot: SlotWriter, *, record: Callable[[DownloadProgress], None]
) -> None:
    """Read every part back from the slot and check its hash; on a mismatch start over.

    UpdateRejectedError when a part differs from its image; the progress is then recorded as
    nothing done, so the next try downloads the whole payload again.
    """
    for part in manifest.parts:
        digest = hashlib.sha256()
        size = 0
        for piece in slot.read_part(part.name, part.size):
            digest.update(piece)
            size += len(piece)
        if size != part.size or digest.hexdigest() != part.sha256:
            record(DownloadProgress())
            raise UpdateRejectedError(
                f"the slot does not hold the image of release {manifest.version} "
                f"(part {part.name}: hash {digest.hexdigest()[:12]}…, "
                f"expected {part.sha256[:12]}…); it will be downloaded again"
            )
    log.info("slot holds release %s", manifest.version)


class HttpsChunkSource:
    """Ranges of payload.bin over HTTPS with the device's client certificate.

    One connection serves every chunk; a reused one that dropped is made again once per
    read. Any answer but a 206 with exactly the bytes asked for is an UpdateError naming it.
    """

    def __init__(
        self,
        url: str,
        *,
        ca_file: Path,
        cert_file: Path,
        key_file: Path,
        timeout: float = TIMEOUT,
    ) -> None:
        split = urllib.parse.urlsplit(url)
        if split.scheme != "https" or not split.hostname:
            raise UpdateError(f"the bundle URL {url!r} is not an https URL")
        self.url = url
        self._host, self._port = split.hostname, split.port or 443
        self._target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        self._timeout = timeout
        try:
            self._context = ssl.create_default_context(cafile=str(ca_file))
            self._context.load_cert_chain(str(cert_file), str(key_file))
        except (OSError, ssl.SSLError) as err:
            raise UpdateError(f"the certificates for {url} do not load: {err}") from err
        self._connection: http.client.HTTPSConnection | None = None

    def __enter__(self) -> HttpsChunkSource:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; safe twice, and a later read opens a new one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes from `offset`, by one range request; blocking up to the timeout."""
        if offset < 0 or size <= 0:
            raise ValueError(f"no range of {size} bytes at {offset}")
        what = f"bytes {offset}-{offset + size - 1} of {self.url}"
        for last_try in (False, True):
            reused = self._connection is not None
            try:
                return self._get(offset, size, what)
            except TimeoutError as err:
                self.close()
                raise UpdateError(f"{what}: no answer within {self._timeout} s") from err
            except (OSError, http.client.HTTPException) as err:
                self.close()
                # A kept-alive connection may have been dropped by the server or the
                # link since the last chunk: one new connection, not a retry loop.
                if last_try or not reused:
                    raise UpdateError(f"{what}: {_describe(err)}") from err
                log.info("%s: the connection dropped (%s); connecting again", what, _describe(err))
        raise AssertionError("unreachable")

    def _get(self, offset: int, size: int, what: str) -> bytes:
        if self._connection is None:
            self._connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._context
            )
        connection = self._connection
        last = offset + size - 1
        connection.request("GET", self._target, headers={"Range": f"bytes={offset}-{last}"})
        response = connection.getresponse()
        if response.status != 206:
            # Not worth reading (a 200 is the whole payload): drop the connection instead.
            self.close()
            raise UpdateError(f"{what}: the server answered {response.status} {response.reason}")
        content_range = response.getheader("Content-Range", "")
        if not content_range.startswith(f"bytes {offset}-{last}/") or response.length != size:
            self.close()
            raise UpdateError(
                f"{what}: the server sent {content_range or 'no range'} "
                f"({response.length} bytes) instead"
            )
        body = response.read()  # IncompleteRead when the body ends early
        if len(body) != size:
            self.close()
            raise UpdateError(f"{what}: the server sent {len(body)} bytes")
        return body


def _fetch(source: ChunkSource, step: _Step) -> bytes:
    """The chunk's image bytes, fetched again while its hash or transfer fails.

    UpdateRejectedError when every fetch brought the whole chunk and none matched its hash:
    the release as served is bad (TLS does not let a link garble bytes), so retrying later
    would not help.
    """
    chunk = step.chunk
    reason = ""
    mismatches = 0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            packed = source.read(chunk.offset, chunk.size)
        except UpdateRejectedError:
            raise
        except UpdateError as err:
            reason = str(err)
        else:
            if len(packed) != chunk.size:
                reason = f"{len(packed)} bytes instead of {chunk.size}"
            elif hashlib.sha256(packed).hexdigest() != chunk.sha256:
                reason = "its bytes do not match its hash"
                mismatches += 1
            else:
                return _unpack(step, packed)
        log.warning(
            "chunk %d (%s): %s (fetch %d of %d)",
            step.index,
            step.part.name,
            reason,
            attempt,
            ATTEMPTS,
        )
    error = UpdateRejectedError if mismatches == ATTEMPTS else UpdateError
    raise error(f"chunk {step.index} of part {step.part.name}: {reason} ({ATTEMPTS} fetches)")


def _unpack(step: _Step, packed: bytes) -> bytes:
    """Decompress a chunk, never to more than one byte past its image size."""
    want = step.chunk.image_size
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=DECODER_MEMORY)
    what = f"chunk {step.index} of part {step.part.name}"
    try:
        data = decoder.decompress(packed, max_length=want + 1)
    except lzma.LZMAError as err:
        raise UpdateRejectedError(f"{what} does not decompress: {err}") from None
    if len(data) > want:
        raise UpdateRejectedError(f"{what} decompresses to more than its {want} bytes")
    if len(data) < want or not decoder.eof or decoder.unused_data:
        raise UpdateRejectedError(f"{what} decompresses to {len(data)} bytes, not {want}")
    return data


def _steps(manifest: BundleManifest) -> list[_Step]:
    steps: list[_Step] = []
    for part in manifest.parts:
        image_offset = 0
        for chunk in part.chunks:
            steps.append(_Step(len(steps), part, chunk, image_offset))
            image_offset += chunk.image_size
    return steps


def _payload_end(step: _Step) -> int:
    return step.chunk.offset + step.chunk.size


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class Pacer:
    """Keeps a download at `bytes_per_s` on average by waiting after what ran ahead.

    `wait(seconds)` returns True when the wait was cut short by a stop (then no more
    waiting happens); the updater passes its stop event's wait.
    """

    def __init__(
        self,
        bytes_per_s: float,
        *,
        wait: Callable[[float], bool],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = bytes_per_s
        self._wait = wait
        self._monotonic = monotonic
        self._start: float | None = None
        self._sent = 0
        self._stopped = False

    def __call__(self, size: int) -> None:
        """`size` more bytes went through: wait until the average is back at the pace."""
        now = self._monotonic()
        if self._start is None:
            self._start = now - size / self._rate  # the first chunk counts as on pace
        self._sent += size
        ahead = self._start + self._sent / self._rate - now
        if ahead > 0 and not self._stopped:
            self._stopped = self._wait(ahead)
