"""The `appliance` command: run the appliance and look after its data."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from appliance import __version__
from appliance.cli.after_failure import after_failure
from appliance.cli.catalog import catalog
from appliance.cli.db import db
from appliance.cli.journal import journal
from appliance.cli.options import config_options, settings_for
from appliance.cli.provision import provision
from appliance.cli.sales import sales
from appliance.cli.selftest import selftest
from appliance.cli.sim import sim
from appliance.cli.staff import staff, stored_value
from appliance.errors import ApplianceError, ConfigError, SchemaTooNewError
from appliance.service.failure_policy import EX_CONFIG
from appliance.settings import resolve_config_path


class _Group(click.Group):
    """Turns the appliance's own errors into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ApplianceError as err:
            raise click.ClickException(str(err)) from err


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="appliance")
def cli() -> None:
    """Point-of-sale appliance: checkout, local hardware, offline store, fleet sync."""


@cli.command()
@click.option("--headless", is_flag=True, help="No checkout screen (service and sync only).")
@config_options
def run(headless: bool, simulate: bool, config_path: str | None) -> None:
    """Run the appliance (a systemd Type=notify service)."""
    from appliance.service.logs import configure_logging
    from appliance.service.main_loop import FrontEnd
    from appliance.service.main_loop import run as run_appliance
    from appliance.service.malloc import limit_malloc_arenas
    from appliance.service.storage_hold import NoticeScreen

    limit_malloc_arenas()  # before any thread starts
    try:
        settings = settings_for(config_path, simulate)
    except ConfigError as err:
        _exit_not_restartable(err)
    target = configure_logging(settings.logging.level)
    path = resolve_config_path(config_path)
    front_end: FrontEnd | None = None
    notice: NoticeScreen | None = None
    if not headless:  # Kivy is imported only when there is a screen to run
        from appliance.screens.launch import run_screen, show_notice

        front_end = run_screen
        notice = functools.partial(show_notice, settings)
    try:
        status = run_appliance(
            settings,
            simulate=simulate,
            front_end=front_end,
            notice=notice,
            config_path=path if path.exists() else None,
            journald=target == "journald",
        )
    except (ConfigError, SchemaTooNewError) as err:
        _exit_not_restartable(err)
    sys.exit(status)


def _exit_not_restartable(err: ApplianceError) -> NoReturn:
    """Exit EX_CONFIG: the unit's RestartPreventExitStatus= then restarts (and reboots) nothing.

    Restarting reads the same configuration and the same database again.
    """
    click.echo(f"Error: {err}", err=True)
    sys.exit(EX_CONFIG)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@config_options
def status(as_json: bool, simulate: bool, config_path: str | None) -> None:
    """Show the state of the store: catalog, documents, outbox."""
    from appliance.cli.status import collect_status, render_status

    report = collect_status(settings_for(config_path, simulate), config_path)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        render_status(report)


@cli.command()
@click.argument("text_file", type=click.Path(path_type=Path, dir_okay=False))
def notice(text_file: Path) -> None:
    """Show TEXT_FILE full-screen (title on its first line) instead of the checkout."""
    from appliance.screens.kivy_env import prepare_kivy
    from appliance.settings import ScreenSettings

    prepare_kivy(
        Path(os.environ.get("KIVY_HOME", "/tmp/appliance-notice")), ScreenSettings(fullscreen=True)
    )
    from appliance.screens.notice import NoticeApp

    NoticeApp(text_file).run()


cli.add_command(db)
cli.add_command(catalog)
cli.add_command(sales)
cli.add_command(journal)
cli.add_command(sim)
cli.add_command(selftest)
cli.add_command(staff)
cli.add_command(stored_value)
cli.add_command(provision)
cli.add_command(after_failure)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="appliance")
