"""The `appliance-hub` command: the reference hub and the fleet admin's tools."""

from __future__ import annotations

import click
from peewee import DatabaseError

from appliance import __version__
from appliance.errors import ApplianceError
from hub.cli_admin import admin_group
from hub.cli_bundles import bundles
from hub.cli_ca import ca_group
from hub.cli_cards import cards
from hub.cli_catalog import catalog, stock_command
from hub.cli_command import FLEET_COMMANDS
from hub.cli_drawer import drawer_command
from hub.cli_fleet import fleet
from hub.cli_release import release_group
from hub.cli_reports import reports
from hub.cli_rollout import rollout_group
from hub.cli_sales import sales
from hub.cli_serve import serve
from hub.cli_status import status_command
from hub.cli_tokens import token_group
from hub.cli_web import web
from hub.storage_faults import driver_message, storage_fault


class _Group(click.Group):
    """Turns the hub's own errors and database faults into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ApplianceError as err:
            raise click.ClickException(str(err)) from err
        except DatabaseError as err:
            fault = storage_fault(err)
            if fault is None:
                raise  # a bug, not the database's state: keep the traceback
            raise click.ClickException(f"{fault.value} ({driver_message(err)})") from err


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="appliance-hub")
def cli() -> None:
    """Reference hub: stores sales, serves catalogs, manages the fleet over MQTT."""


cli.add_command(ca_group)
cli.add_command(serve)
cli.add_command(status_command)
cli.add_command(sales)
cli.add_command(reports)
cli.add_command(drawer_command)
for command in FLEET_COMMANDS:  # command, config, logs, keygen live under `fleet`
    fleet.add_command(command)
cli.add_command(fleet)
cli.add_command(catalog)
cli.add_command(stock_command)
cli.add_command(web)
cli.add_command(token_group)
cli.add_command(admin_group)
cli.add_command(release_group)
cli.add_command(rollout_group)
cli.add_command(bundles)
cli.add_command(cards)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="appliance-hub")
