"""`appliance-hub status`: every hub worker, alive or not, with its counters and the totals."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from hub.cli_options import db_option, open_db
from hub.worker_stats import STALE_AFTER, WorkerView, totals, workers

# The counters shown as columns; `--json` has them all.
COLUMNS = ("received", "malformed", "unhandled", "failures", "db_reconnects")


@click.command("status")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
def status_command(db_url: str, as_json: bool) -> None:
    """The hub workers (alive, stopped or silent) with their counters, and the totals."""
    db = open_db(db_url)
    try:
        found = workers(db, datetime.now(UTC))
    finally:
        db.close()
    total = totals(found)
    if as_json:
        click.echo(
            json.dumps({"workers": [asdict(w) for w in found], "totals": asdict(total)}, indent=2)
        )
        return
    table = Table("worker", "state", "started (UTC)", "last seen (UTC)", *COLUMNS)
    for view in found:
        table.add_row(
            view.worker_id,
            view.state,
            view.started_at,
            view.seen_at,
            *_counts(view),
        )
    table.add_row("all", "", "", "", *_counts(total), end_section=True)
    console = Console()
    console.print(table)
    alive = sum(view.state == "alive" for view in found)
    console.print(
        f"{len(found)} worker(s), {alive} alive (counters saved within {STALE_AFTER:g} s)"
    )
    for name, title in (
        ("malformed_by_device", "malformed messages by device"),
        ("unhandled_by_device", "messages on topics the hub does not handle, by device"),
    ):
        counts = total.per_device.get(name) or {}
        if counts:
            console.print(f"{title}:")
            for device, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
                console.print(f"  {device}: {count}")


def _counts(view: WorkerView) -> list[str]:
    return [str(view.counters.get(name, 0)) for name in COLUMNS]
