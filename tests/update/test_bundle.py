"""The bundle file: built by streaming, verifiable, and its members found without loading them."""

from __future__ import annotations

import hashlib
import io
import lzma
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.errors import UpdateRejectedError
from appliance.update import bundle as bundle_module
from appliance.update.bundle import (
    MEMBERS,
    build_bundle,
    read_bundle,
    verify_bundle,
)
from appliance.update.manifest import BundleManifest, verify_manifest
from tests.update.bundles import BOOT_SIZE, ROOT_SIZE, TEST_CHUNK, extract_payload, make_bundle

Bundle = tuple[Path, BundleManifest]


def test_the_bundle_verifies_and_its_chunks_rebuild_each_image(
    tmp_path: Path, bundle: Bundle, release_private_key: Ed25519PrivateKey
) -> None:
    path, built = bundle
    members = read_bundle(path)
    manifest = verify_manifest(
        members.manifest_json, members.signature, release_private_key.public_key()
    )
    assert manifest == built
    assert verify_bundle(path, release_private_key.public_key()) == built
    assert [part.name for part in manifest.parts] == ["boot", "root"]
    assert [part.size for part in manifest.parts] == [BOOT_SIZE, ROOT_SIZE]
    payload = extract_payload(path, tmp_path / "payload.bin").read_bytes()
    assert len(payload) == manifest.payload_size == members.payload_size
    assert hashlib.sha256(payload).hexdigest() == manifest.payload_sha256
    at = 0
    for part in manifest.parts:
        image = (tmp_path / "images" / f"{part.name}.img").read_bytes()
        assert hashlib.sha256(image).hexdigest() == part.sha256
        rebuilt = b""
        for chunk in part.chunks:
            assert chunk.offset == at  # end to end, part by part in manifest order
            packed = payload[chunk.offset : chunk.offset + chunk.size]
            assert hashlib.sha256(packed).hexdigest() == chunk.sha256
            data = lzma.decompress(packed, format=lzma.FORMAT_XZ)
            assert len(data) == chunk.image_size <= TEST_CHUNK
            rebuilt += data
            at += chunk.size
        assert rebuilt == image
    assert at == manifest.payload_size
    # The payload staged beside the bundle while building is gone.
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["bundle-2026.12.1.tar", "images", "payload.bin"]


def test_building_holds_a_chunk_in_memory_never_an_image(
    tmp_path: Path, release_private_key: Ed25519PrivateKey
) -> None:
    root = tmp_path / "root.img"
    with root.open("wb") as image:
        image.truncate(16 * 1024 * 1024)  # zeros compress fast; the size is what matters
    tracemalloc.start()
    try:
        manifest = build_bundle(
            {"boot": None, "root": root},
            tmp_path / "bundle.tar",
            version="2026.12.1",
            image_version="v1",
            min_version="2026.1",
            key=release_private_key,
            chunk_size=TEST_CHUNK,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(manifest.parts[0].chunks) == 256
    # One chunk, its xz stream and the compressor's tables: far below the 16 MiB image.
    assert peak < 6 * 1024 * 1024


def test_reading_a_bundle_skips_over_its_payload(tmp_path: Path) -> None:
    # A 4 GiB payload that is a hole in a sparse file: reading it would take all the
    # memory, or all the time, the test has.
    path = tmp_path / "huge.tar"
    payload_size = 4 * 1024**3
    with path.open("wb") as out:
        for name, data in ((MEMBERS[0], b"{}"), (MEMBERS[1], bytes(64))):
            out.write(_header(name, len(data)) + data + bytes(-len(data) % 512))
        out.write(_header(MEMBERS[2], payload_size))
        payload_offset = out.tell()
        out.truncate(payload_offset + payload_size + 1024)
    tracemalloc.start()
    try:
        members = read_bundle(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert members == (b"{}", bytes(64), payload_offset, payload_size)
    assert peak < 1024 * 1024


@pytest.mark.parametrize("keep", [0.3, "manifest", "payload_header", "payload_but_its_last_byte"])
def test_a_truncated_bundle_is_refused(bundle: Bundle, keep: float | str) -> None:
    path, _ = bundle
    data = path.read_bytes()
    if keep == "manifest":
        cut = 700  # inside manifest.json, past its header
    elif keep == "payload_header":
        cut = read_bundle(path).payload_offset  # every header, no payload byte
    elif keep == "payload_but_its_last_byte":
        members = read_bundle(path)
        cut = members.payload_offset + members.payload_size - 1
    else:
        assert isinstance(keep, float)
        cut = int(len(data) * keep)
    path.write_bytes(data[:cut])
    with pytest.raises(UpdateRejectedError, match=r"cut short|not a whole bundle"):
        read_bundle(path)


@pytest.mark.parametrize(
    "names",
    [
        ["manifest.sig", "manifest.json", "payload.bin"],
        ["payload.bin", "manifest.json", "manifest.sig"],
        ["manifest.json", "payload.bin"],
        ["manifest.json", "manifest.sig", "payload.bin", "extra.txt"],
    ],
)
def test_members_out_of_order_missing_or_extra_are_refused(
    tmp_path: Path, bundle: Bundle, names: list[str]
) -> None:
    path, _ = bundle
    contents = _members(path)
    contents["extra.txt"] = b"hello"
    rebuilt = tmp_path / "rebuilt.tar"
    with tarfile.open(rebuilt, "w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(contents[name])
            tar.addfile(info, io.BytesIO(contents[name]))
    with pytest.raises(UpdateRejectedError, match="in this order"):
        read_bundle(rebuilt)


def test_a_signature_of_the_wrong_size_is_refused(tmp_path: Path, bundle: Bundle) -> None:
    path, _ = bundle
    contents = _members(path)
    contents["manifest.sig"] += b"\0"
    rebuilt = tmp_path / "rebuilt.tar"
    with tarfile.open(rebuilt, "w") as tar:
        for name in MEMBERS:
            info = tarfile.TarInfo(name)
            info.size = len(contents[name])
            tar.addfile(info, io.BytesIO(contents[name]))
    with pytest.raises(UpdateRejectedError, match="a signature of 65"):
        read_bundle(rebuilt)


def test_verify_bundle_refuses_an_altered_payload_or_another_key(
    bundle: Bundle, release_private_key: Ed25519PrivateKey
) -> None:
    path, _ = bundle
    members = read_bundle(path)
    with pytest.raises(UpdateRejectedError, match="signature"):
        verify_bundle(path, Ed25519PrivateKey.generate().public_key())
    with path.open("r+b") as raw:
        raw.seek(members.payload_offset + members.payload_size // 2)
        byte = raw.read(1)
        raw.seek(-1, io.SEEK_CUR)
        raw.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(UpdateRejectedError, match="does not match its hash"):
        verify_bundle(path, release_private_key.public_key())


def test_a_bundle_needs_a_root_image_and_release_versions(
    tmp_path: Path, release_private_key: Ed25519PrivateKey
) -> None:
    image = tmp_path / "boot.img"
    image.write_bytes(b"boot")
    out = tmp_path / "bundle.tar"
    common = {"image_version": "v1", "min_version": "2026.1", "key": release_private_key}
    with pytest.raises(UpdateRejectedError, match="root image"):
        build_bundle({"boot": image}, out, version="2026.12.1", **common)  # type: ignore[arg-type]
    with pytest.raises(UpdateRejectedError, match="not a release version"):
        build_bundle({"root": image}, out, version="next", **common)  # type: ignore[arg-type]
    assert not out.exists()


def test_a_failed_build_leaves_no_file_behind(
    tmp_path: Path, release_private_key: Ed25519PrivateKey
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(FileNotFoundError):
        make_bundle(
            out_dir,
            key=release_private_key,
            images={"root": tmp_path / "missing.img"},
        )
    assert list(out_dir.iterdir()) == []


def test_a_later_build_replaces_the_bundle_whole(
    tmp_path: Path, release_private_key: Ed25519PrivateKey
) -> None:
    first, _ = make_bundle(tmp_path, key=release_private_key)
    (tmp_path / "images" / "root.img").write_bytes(b"smaller")
    second, manifest = make_bundle(
        tmp_path, key=release_private_key, images={"root": tmp_path / "images" / "root.img"}
    )
    assert first == second
    assert verify_bundle(second, release_private_key.public_key()) == manifest
    assert [part.size for part in manifest.parts] == [len(b"smaller")]


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.PAX_FORMAT)


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for info in tar:
            reader = tar.extractfile(info)
            assert reader is not None
            out[info.name] = reader.read()
        return out


def test_chunks_compressed_side_by_side_land_in_order_as_one_at_a_time_would(
    tmp_path: Path, release_private_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root.img"
    # Chunks that differ from each other, so any out-of-order write shows.
    root.write_bytes(b"".join(hashlib.sha256(bytes([n])).digest() * 300 for n in range(40)))
    payloads = []
    for workers in (1, 4):
        monkeypatch.setattr(bundle_module, "WORKERS", workers)
        out = tmp_path / f"bundle-{workers}.tar"
        manifest = build_bundle(
            {"boot": None, "root": root},
            out,
            version="2026.12.1",
            image_version="v1",
            min_version="2026.1",
            key=release_private_key,
            chunk_size=TEST_CHUNK,
            created_at="2026-12-07T00:00:00+00:00",
            preset=1,
        )
        payloads.append((_members(out)["payload.bin"], manifest))
    assert payloads[0] == payloads[1]
    payload, manifest = payloads[1]
    chunks = manifest.parts[0].chunks
    rebuilt = b"".join(lzma.decompress(payload[c.offset : c.offset + c.size]) for c in chunks)
    assert rebuilt == root.read_bytes()
