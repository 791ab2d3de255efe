"""Small update bundles for tests: two generated images, chunked small, signed by a test key.

`make_images` writes a root and a boot image whose bytes are part random, part runs of
zeros (so chunks compress to different sizes, as real ones do); `make_bundle` builds a
signed bundle of them with chunks of TEST_CHUNK bytes; `extract_payload` copies its
payload.bin out, as the hub's `release add` does, for a bundle server to serve.
"""

from __future__ import annotations

import random
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.update.bundle import build_bundle, copy_payload, read_bundle
from appliance.update.manifest import BundleManifest

TEST_CHUNK = 64 * 1024  # bytes of image per chunk: a few chunks per part, fast to compress
ROOT_SIZE = 5 * TEST_CHUNK + 1234  # not a whole number of chunks: the last one is short
BOOT_SIZE = 2 * TEST_CHUNK + 77
_PIECE = 4096


def make_images(tmp_path: Path, root_size: int, boot_size: int) -> dict[str, Path]:
    """Write `images/root.img` and `images/boot.img` of the given sizes under `tmp_path`."""
    folder = tmp_path / "images"
    folder.mkdir(parents=True, exist_ok=True)
    images = {"root": folder / "root.img", "boot": folder / "boot.img"}
    for seed, (name, size) in enumerate((("root", root_size), ("boot", boot_size))):
        rng = random.Random(seed)
        with images[name].open("wb") as out:
            left = size
            while left:
                n = min(_PIECE, left)
                # One piece in three is zeros: compressible, like the free space of a file system.
                out.write(bytes(n) if rng.random() < 1 / 3 else rng.randbytes(n))
                left -= n
    return images


def make_bundle(
    tmp_path: Path,
    *,
    version: str = "2026.12.1",
    min_version: str = "2026.1.1",
    key: Ed25519PrivateKey,
    images: dict[str, Path] | None = None,
    chunk_size: int = TEST_CHUNK,
) -> tuple[Path, BundleManifest]:
    """Build `bundle-<version>.tar` under `tmp_path` (from make_images unless `images`)."""
    images = images or make_images(tmp_path, ROOT_SIZE, BOOT_SIZE)
    out = tmp_path / f"bundle-{version}.tar"
    manifest = build_bundle(
        {"boot": images.get("boot"), "root": images["root"]},
        out,
        version=version,
        image_version=f"v{version}-test",
        min_version=min_version,
        image_manifest="python3 3.11.2-1\n",
        key=key,
        chunk_size=chunk_size,
    )
    return out, manifest


def extract_payload(bundle: Path, out: Path) -> Path:
    """Copy the bundle's payload.bin to `out`; return `out`."""
    with out.open("wb") as sink:
        copy_payload(bundle, read_bundle(bundle), sink)
    return out
