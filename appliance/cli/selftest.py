"""`appliance selftest`: each configured device checked; a pass/fail table and exit status."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from appliance.cli.options import config_options, settings_for

VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "skip": "yellow"}


class ClickPrompter:
    """Asks the technician on the terminal."""

    def tell(self, message: str) -> None:
        """Show an instruction."""
        click.echo(message, err=True)

    def confirm(self, question: str) -> bool:
        """Ask yes/no (default no)."""
        return click.confirm(question, default=False, err=True)


@click.command()
@click.option(
    "--non-interactive",
    is_flag=True,
    help="Ask nothing: inject input into simulators, skip what needs a person.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=600),
    default=15.0,
    show_default=True,
    help="Seconds to wait for each device.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--verbose", is_flag=True, help="Log what the devices do (to stderr).")
@config_options
def selftest(
    *,
    non_interactive: bool,
    timeout: float,
    as_json: bool,
    verbose: bool,
    simulate: bool,
    config_path: str | None,
) -> None:
    """Check every configured device (with --simulate and none configured: the simulators)."""
    from appliance.service.logs import configure_logging
    from appliance.service.selftest import SilentPrompter, run_selftest

    settings = settings_for(config_path, simulate)
    # The table carries every failure and its reason; device chatter only on request.
    configure_logging(settings.logging.level if verbose else "ERROR")
    results = run_selftest(
        settings,
        simulate=simulate,
        interactive=not non_interactive,
        timeout=timeout,
        prompter=SilentPrompter() if non_interactive else ClickPrompter(),
    )
    passed = all(result.verdict != "fail" for result in results)
    if as_json:
        report = {"passed": passed, "devices": [asdict(result) for result in results]}
        click.echo(json.dumps(report, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"Self-test of {settings.device.id}")
        for column in ("device", "kind", "result", "reason"):
            table.add_column(column)
        for result in results:
            style = VERDICT_STYLE[result.verdict]
            verdict = f"[{style}]{result.verdict.upper()}[/]"
            table.add_row(result.device, result.kind, verdict, result.reason)
        console = Console()
        if results:
            console.print(table)
        else:
            console.print("No devices configured: nothing to test.")
        console.print("[bold green]PASS[/]" if passed else "[bold red]FAIL[/]")
    sys.exit(0 if passed else 1)
