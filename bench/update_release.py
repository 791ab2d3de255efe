"""A release to download: a synthetic root image, its signed bundle, and the hub serving it."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import UpdateError
from appliance.update.bundle import build_bundle, read_bundle
from appliance.update.download import HttpsChunkSource
from appliance.update.manifest import BundleManifest
from bench.broker import free_port
from bench.fresh_process import REPO
from hub.ca import CA_CERT, init_ca, issue_device, issue_server
from hub.db import open_hub_database
from hub.migrations import migrate
from hub.releases.adding import add_release
from hub.releases.keys import generate_release_keys, load_release_key, load_release_public_key

VERSION = "2026.12.2"
MIN_VERSION = "2026.1.1"
DEVICE = "bench-device"
SEED = 20_261_202
BLOCK = 64 * 1024
# Shares of the image by kind of block; with xz they make a bundle of about a third of the
# image, as a Raspberry Pi OS Lite root file system with some free space compresses.
MIX = (("text", 0.40), ("binary", 0.30), ("packed", 0.08), ("free", 0.22))
IMAGE_NOTE = (
    "synthetic root image of {mib} MiB in 64 KiB blocks drawn at random (seeded): 40 % "
    "text-like (words of a 4,000-word vocabulary, Zipf-distributed, in lines, as config, "
    "scripts and docs), 30 % binary-like (a 3,000-token pool of 2-7 byte 'instructions' with "
    "skewed byte values, Zipf-distributed, a random byte after every other token as operands), "
    "8 % random bytes (files already compressed), 22 % zeros (free space); "
    "build_bundle with the default 4 MiB chunks, xz preset 6"
)
SERVER_COMMAND = (sys.executable, "-c", "from hub.cli import main; main()", "bundles")
READY_S = 30.0


def _zipf(count: int) -> list[float]:
    return list(itertools.accumulate(1 / (rank + 1) for rank in range(count)))


class _Blocks:
    """Blocks of each kind in MIX, from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        self.words = [
            "".join(rng.choices(letters, weights=range(26, 0, -1), k=rng.randint(2, 10)))
            for _ in range(4000)
        ]
        self.words += ["/usr/lib", "=", "{", "}", "#", "0", "1", "true", "if", "\n", "\n", "\n\t"]
        rng.shuffle(self.words)
        self.word_weights = _zipf(len(self.words))
        # Machine code is mostly small values, zeros and a few common opcodes.
        weights = [6 if v < 16 else 1 for v in range(256)]
        for value, weight in ((0x00, 40), (0xFF, 12), (0x48, 3), (0x89, 3), (0x8B, 3), (0xE8, 3)):
            weights[value] = weight
        bounds = list(itertools.accumulate(weights))
        self.skew = bytes(
            next(v for v, bound in enumerate(bounds) if bound >= (u + 0.5) / 256 * bounds[-1])
            for u in range(256)
        )
        self.tokens = [rng.randbytes(rng.randint(2, 7)).translate(self.skew) for _ in range(3000)]
        self.token_weights = _zipf(len(self.tokens))
        self.makers: dict[str, Callable[[], bytes]] = {
            "text": self.text,
            "binary": self.binary,
            "packed": lambda: self.rng.randbytes(BLOCK),
            "free": lambda: bytes(BLOCK),
        }

    def text(self) -> bytes:
        """Words in lines."""
        words = self.rng.choices(self.words, cum_weights=self.word_weights, k=BLOCK // 5)
        return " ".join(words).encode("ascii")[:BLOCK].ljust(BLOCK, b"\n")

    def binary(self) -> bytes:
        """Tokens with an operand byte after every other one."""
        tokens = self.rng.choices(self.tokens, cum_weights=self.token_weights, k=BLOCK // 3)
        operands = self.rng.randbytes(len(tokens))
        out = b"".join(t + operands[i : i + 1] if i % 2 else t for i, t in enumerate(tokens))
        return out[:BLOCK].ljust(BLOCK, b"\0")


def write_root_image(path: Path, size: int, seed: int = SEED) -> dict[str, int]:
    """Write a `size`-byte image that compresses like a root file system; bytes per kind."""
    blocks = _Blocks(seed)
    kinds = [kind for kind, _ in MIX]
    shares = [share for _, share in MIX]
    written = dict.fromkeys(kinds, 0)
    with path.open("wb") as out:
        left = size
        while left > 0:
            kind = blocks.rng.choices(kinds, weights=shares)[0]
            block = blocks.makers[kind]()[:left]
            out.write(block)
            written[kind] += len(block)
            left -= len(block)
    return written


@dataclass(frozen=True, slots=True)
class Pki:
    """The fleet CA, the bundle server's certificate and one device's client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    device_cert: Path
    device_key: Path


def make_pki(folder: Path) -> Pki:
    """The hub's own CA tooling: a fleet CA, a server certificate for 127.0.0.1, a device's."""
    ca_dir, server_dir, device_dir = folder / "ca", folder / "server", folder / "device"
    init_ca(ca_dir)
    server_cert, server_key = issue_server(ca_dir, "127.0.0.1", server_dir)
    device_cert, device_key = issue_device(ca_dir, DEVICE, device_dir)
    return Pki(ca_dir / CA_CERT, server_cert, server_key, device_cert, device_key)


@dataclass(frozen=True, slots=True)
class Release:
    """A built bundle added to a hub database, and the release public key devices hold."""

    manifest: BundleManifest
    manifest_json: str  # the signed bytes, as the update command carries them
    signature: bytes
    bundle: Path
    public_key: Path
    db_url: str
    build_s: float


def make_release(folder: Path, image: Path) -> Release:
    """Sign a bundle of `image` with a fresh release key and add it to a new hub database."""
    private, public = generate_release_keys(folder / "release.key")
    bundle = folder / f"{VERSION}.bundle"
    started = time.perf_counter()
    manifest = build_bundle(
        {"boot": None, "root": image},
        bundle,
        version=VERSION,
        image_version=VERSION,
        min_version=MIN_VERSION,
        key=load_release_key(private),
    )
    build_s = time.perf_counter() - started
    db_url = f"sqlite:///{folder / 'hub.db'}"
    db = open_hub_database(db_url)
    try:
        migrate(db)
        add_release(db, bundle, load_release_public_key(public), folder / "releases")
    finally:
        db.close()
    members = read_bundle(bundle)
    text = members.manifest_json.decode("utf-8")
    return Release(manifest, text, members.signature, bundle, public, db_url, build_s)


@contextlib.contextmanager
def bundle_server(folder: Path, release: Release, pki: Pki) -> Iterator[str]:
    """`appliance-hub bundles` on a free loopback port; the payload's URL once it answers."""
    port = free_port()
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    command = [
        *SERVER_COMMAND,
        *("--db", release.db_url, "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"),
        *("--cert", str(pki.server_cert), "--key", str(pki.server_key)),
        *("--client-ca", str(pki.ca)),
    ]
    log_path = folder / "bundles.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env={**os.environ, "PYTHONPATH": path},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{port}/bundles/{VERSION}/payload.bin"
    try:
        _wait_until_serving(url, pki, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_serving(url: str, pki: Pki, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until one byte comes over mTLS, as the device asks for it."""
    deadline = time.monotonic() + READY_S
    source = HttpsChunkSource(
        url, ca_file=pki.ca, cert_file=pki.device_cert, key_file=pki.device_key, timeout=5.0
    )
    with source:
        while True:
            try:
                source.read(0, 1)
                return
            except UpdateError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the bundle server did not answer: see {log}") from None
                time.sleep(0.1)
