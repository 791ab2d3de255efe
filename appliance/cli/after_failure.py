"""`appliance after-failure`: run by systemd (OnFailure=) once restarting the appliance stopped."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import click

from appliance.service.failure_policy import MIN_HOURS, decide, notice_for, remember_reboot


@click.command("after-failure")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/var/lib/appliance"),
    show_default=True,
    help="Where the time of the last reboot for a failure is kept (the data partition).",
)
@click.option(
    "--notice",
    "notice_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the notice for staff here and start appliance-notice.service to show it.",
)
@click.option("--min-hours", type=float, default=MIN_HOURS, show_default=True)
@click.option("--reboot-command", default="systemctl reboot", show_default=True)
@click.option(
    "--show-command",
    default="systemctl start --no-block appliance-notice.service",
    show_default=True,
)
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
def after_failure(
    *,
    state_dir: Path,
    notice_path: Path | None,
    min_hours: float,
    reboot_command: str,
    show_command: str,
    dry_run: bool,
) -> None:
    """Reboot once for a failed appliance, or show a notice instead of a reboot loop."""
    exit_status = os.environ.get("MONITOR_EXIT_STATUS", "")
    result = os.environ.get("MONITOR_SERVICE_RESULT", "")
    verdict = decide(state_dir, exit_status, now=time.time(), min_hours=min_hours)
    if dry_run:
        click.echo(f"{'reboot' if verdict.reboot else 'notice'}: {verdict.reason}")
        return
    if verdict.reboot and remember_reboot(state_dir):
        click.echo(f"reboot: {verdict.reason}", err=True)
        subprocess.run(shlex.split(reboot_command), check=False)
        return
    click.echo(f"no reboot: {verdict.reason}", err=True)
    if notice_path is not None:
        notice_path.parent.mkdir(parents=True, exist_ok=True)
        notice_path.write_text(notice_for(verdict, result), encoding="utf-8")
        subprocess.run(shlex.split(show_command), check=False)
