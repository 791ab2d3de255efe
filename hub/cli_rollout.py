"""`appliance-hub rollout start|status|pause|resume`: stage a release across a store's devices.

`start` and `resume` sign one `update` command per new device with the fleet key, record
and hold it at the hub (a device offline now gets it at its next connection), then
publish it; without a broker the serve workers send the held commands themselves.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hub.cli_command import BrokerOptions, fleet_key_option
from hub.cli_options import broker_options, db_option, tls_files
from hub.cli_release import open_migrated
from hub.ingest import utc_text
from hub.releases.rollout import Grown, RolloutView

BUNDLE_URL_ENVVAR = "APPLIANCE_HUB_BUNDLE_URL"
STATES_SHOWN = ("sent", "offered", "downloading", "downloaded", "trying", "committed",
                "rolled_back", "rejected", "expired")  # fmt: skip


def _signing_options(function: Any) -> Any:
    """The fleet key, the bundle server's URL, and the broker the commands go out on."""
    function = click.option(
        "--hold-only",
        is_flag=True,
        help="Only record and hold the commands; the serve workers send them.",
    )(function)
    function = click.option(
        "--bundle-url",
        envvar=BUNDLE_URL_ENVVAR,
        required=True,
        help="Base URL of `appliance-hub bundles` as devices reach it, e.g. https://hub:8443.",
    )(function)
    return fleet_key_option(broker_options(function))


def _signer(options: dict[str, Any]) -> Any:
    from hub.fleet_keys import load_fleet_key
    from hub.releases.issuing import broker_publisher
    from hub.releases.rollout import Signer

    url = options["bundle_url"]
    if not url.startswith("https://"):
        raise click.BadParameter(f"{url!r} is not an https:// URL", param_hint="--bundle-url")
    publish = None
    if not options["hold_only"]:
        ca, cert, key = options["tls_ca"], options["tls_cert"], options["tls_key"]
        tls_files(ca, cert, key)  # refuses a certificate without a key, or either without a CA
        publish = broker_publisher(BrokerOptions(options["host"], options["port"], ca, cert, key))
    return Signer(load_fleet_key(options["fleet_key"]), url, publish)


@click.group("rollout")
def rollout_group() -> None:
    """Staged rollouts of a release: start, watch, pause, resume."""


@rollout_group.command("start")
@click.argument("version")
@click.option("--store", required=True, help="The store whose devices get the release.")
@click.option(
    "--percent",
    type=click.IntRange(1, 100),
    required=True,
    help="Share of the store's devices; run again with more to add devices.",
)
@click.option(
    "--max-rollbacks",
    type=click.FloatRange(0, 1),
    help="Pause when this share of finished devices rolled back (default 0.2).",
)
@click.option(
    "--min-finished",
    type=click.IntRange(1),
    help="Finished devices needed before the share is judged (default 3).",
)
@_signing_options
@db_option
def start_command(
    *,
    version: str,
    store: str,
    percent: int,
    max_rollbacks: float | None,
    min_finished: int | None,
    db_url: str,
    **options: Any,
) -> None:
    """Offer release VERSION to PERCENT % of STORE's devices (more when run again)."""
    from hub.releases.rollout import start_rollout

    signer = _signer(options)
    db = open_migrated(db_url)
    try:
        grown = start_rollout(
            db,
            version,
            store,
            percent,
            signer,
            max_rollback_share=max_rollbacks,
            min_finished=min_finished,
        )
    finally:
        db.close()
    _report_grown(grown)


@rollout_group.command("resume")
@click.argument("version")
@click.option("--store", help="Only the rollout to this store.")
@click.option(
    "--max-rollbacks",
    type=click.FloatRange(0, 1),
    help="A new threshold (else the next rollback past the old one pauses it again).",
)
@_signing_options
@db_option
def resume_command(
    version: str, store: str | None, max_rollbacks: float | None, db_url: str, **options: Any
) -> None:
    """Resume the paused rollouts of VERSION and add devices up to their percent."""
    from hub.releases.rollout import resume_rollouts

    signer = _signer(options)
    db = open_migrated(db_url)
    try:
        grown = resume_rollouts(db, version, signer, store=store, max_rollback_share=max_rollbacks)
    finally:
        db.close()
    for one in grown:
        _report_grown(one)


@rollout_group.command("pause")
@click.argument("version")
@click.option("--store", help="Only the rollout to this store.")
@click.option("--reason", default="paused by an admin", show_default=True)
@db_option
def pause_command(version: str, store: str | None, reason: str, db_url: str) -> None:
    """Pause the rollouts of VERSION: no new device gets it until `resume`."""
    from hub.releases.rollout import pause_rollouts

    db = open_migrated(db_url)
    try:
        paused = pause_rollouts(db, version, reason, store=store)
    finally:
        db.close()
    for view in paused:
        click.echo(f"rollout {view.id} of {view.version} to store {view.store} paused")


@rollout_group.command("status")
@click.argument("version", required=False)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
def status_command(version: str | None, db_url: str, as_json: bool) -> None:
    """Every rollout (of VERSION) with its devices counted by update state."""
    from hub.releases.rollout import rollouts

    db = open_migrated(db_url)
    try:
        found = rollouts(db, version)
    finally:
        db.close()
    if as_json:
        rows = [
            {**asdict(view), "created_at": utc_text(view.created_at), "targeted": view.targeted}
            for view in found
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "release", "store", "percent", "targeted", "state", *STATES_SHOWN)
    for view in found:
        table.add_row(
            str(view.id),
            view.version,
            view.store,
            f"{view.percent} %",
            f"{view.targeted} of {view.store_devices}",
            _state_text(view),
            *(str(view.counts.get(state, 0)) for state in STATES_SHOWN),
        )
    console = Console()
    console.print(table)
    console.print(f"{len(found)} rollout(s)")


def _state_text(view: RolloutView) -> str:
    return f"{view.state}: {view.pause_reason}" if view.pause_reason else view.state


def _report_grown(grown: Grown) -> None:
    view = grown.rollout
    click.echo(
        f"rollout {view.id} of {view.version} to store {view.store}: {view.percent} %,"
        f" {view.targeted} of {view.store_devices} device(s) targeted, {_state_text(view)}"
    )
    if view.state == "paused":
        click.echo("paused: no device added (appliance-hub rollout resume)")
        return
    if not grown.added:
        click.echo("no device added: the share is reached (raise --percent to add more)")
        return
    devices = ", ".join(command.device for command in grown.added)
    click.echo(f"update command sent to {len(grown.added)} new device(s): {devices}")
    if not grown.published:
        why = f" ({grown.problem})" if grown.problem else ""
        click.echo(
            f"not published now{why}: held at the hub, a serve worker sends each when its"
            " device is online"
        )
