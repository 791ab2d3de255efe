"""`appliance-hub release keygen|build|add|list`: make, sign and keep release bundles."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from peewee import Database
from rich.console import Console
from rich.table import Table

from hub.cli_options import db_option, existing_file
from hub.db import HubDatabaseError, open_hub_database
from hub.ingest import utc_text
from hub.migrations import migrate

RELEASES_ENVVAR = "APPLIANCE_HUB_RELEASES"

releases_option = click.option(
    "--releases",
    type=click.Path(path_type=Path, file_okay=False),
    envvar=RELEASES_ENVVAR,
    default="releases",
    show_default=True,
    help="Where the hub keeps release payloads (the bundle server reads them from there).",
)


def open_migrated(db_url: str) -> Database:
    """The hub database, migrated to this hub's schema; its problem as a click error."""
    try:
        db = open_hub_database(db_url)
        migrate(db)
    except HubDatabaseError as err:
        raise click.ClickException(str(err)) from err
    return db


@click.group("release")
def release_group() -> None:
    """Release bundles: the release key, building, adding to the hub, listing."""


@release_group.command("keygen")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
def keygen_command(out: Path, force: bool) -> None:
    """Make the release signing key OUT (0600) and its public half OUT.pub beside it."""
    from hub.releases.keys import generate_release_keys

    private, public = generate_release_keys(out, force=force)
    click.echo(f"private key {private} (keep it off the hub: it signs what every kiosk runs)")
    click.echo(f"public key  {public} (every appliance's [hub] release_public_key)")


@release_group.command("build")
@click.option("--boot", type=existing_file, help="The boot partition image (FAT).")
@click.option("--root", type=existing_file, required=True, help="The root file system image.")
@click.option("--version", "version", required=True, help="The release, e.g. 2026.12.2.")
@click.option("--min-version", required=True, help="The oldest release it may update from.")
@click.option("--image-version", default="", help="The build's own version (default: --version).")
@click.option(
    "--image-manifest",
    type=existing_file,
    help="The image's package list, carried in the manifest.",
)
@click.option("--key", type=existing_file, required=True, help="The release private key.")
@click.option(
    "--xz-preset",
    type=click.IntRange(0, 9),
    default=6,
    show_default=True,
    help="xz's preset: lower builds faster, and every kiosk downloads more.",
)
@click.option(
    "-o", "--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
    help="The bundle file to write.",
)  # fmt: skip
def build_command(
    *,
    boot: Path | None,
    root: Path,
    version: str,
    min_version: str,
    image_version: str,
    image_manifest: Path | None,
    key: Path,
    xz_preset: int,
    out: Path,
) -> None:
    """Build a signed bundle from the slot's partition images."""
    from appliance.update.bundle import build_bundle
    from appliance.update.manifest import release_key
    from hub.releases.keys import load_release_key

    release_key(version)
    release_key(min_version)
    signing_key = load_release_key(key)
    manifest = build_bundle(
        {"boot": boot, "root": root},
        out,
        version=version,
        image_version=image_version or version,
        min_version=min_version,
        image_manifest=image_manifest.read_text(encoding="utf-8") if image_manifest else "",
        key=signing_key,
        preset=xz_preset,
    )
    chunks = sum(len(part.chunks) for part in manifest.parts)
    click.echo(
        f"{out}: release {manifest.version} (from {manifest.min_version} on),"
        f" {manifest.payload_size} bytes of payload in {chunks} chunks"
    )


@release_group.command("add")
@click.argument("bundle", type=existing_file)
@click.option("--key", type=existing_file, required=True, help="The release public key.")
@releases_option
@db_option
def add_command(bundle: Path, key: Path, releases: Path, db_url: str) -> None:
    """Check BUNDLE against the release key and keep it for rollouts."""
    from hub.releases.adding import add_release
    from hub.releases.keys import load_release_public_key

    public = load_release_public_key(key)
    db = open_migrated(db_url)
    try:
        added = add_release(db, bundle, public, releases)
    finally:
        db.close()
    if added.added:
        click.echo(
            f"release {added.version} added ({added.payload_size} bytes at {added.payload_path})"
        )
    else:
        click.echo(f"release {added.version} is already here from this same bundle; nothing to do")


@release_group.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
def list_command(db_url: str, as_json: bool) -> None:
    """The releases this hub holds, the newest first."""
    from hub.releases.store import releases

    db = open_migrated(db_url)
    try:
        found = releases(db)
    finally:
        db.close()
    if as_json:
        rows = []
        for view in found:
            row = asdict(view)
            del row["manifest"], row["signature"]
            row["added_at"] = utc_text(view.added_at)
            rows.append(row)
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("version", "from", "image", "payload (bytes)", "added (UTC)")
    for view in found:
        table.add_row(
            view.version,
            view.min_version,
            view.image_version,
            str(view.payload_size),
            utc_text(view.added_at),
        )
    console = Console()
    console.print(table)
    console.print(f"{len(found)} release(s)")
