"""The benchmark table on stdout (rich)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from bench.result import Row

PIPE_WIDTH = 160
_STYLE = {"PASS": "green", "FAIL": "bold red", "ERROR": "bold red", "info": "dim"}


def number(value: float | None, unit: str = "") -> str:
    """A value with about three significant digits and its unit; "-" when absent."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def build_table(rows: Sequence[Row], title: str) -> Table:
    """Columns: benchmark, measured, target, baseline, ratio, pass/fail."""
    table = Table(title=title, title_justify="left")
    table.add_column("benchmark", no_wrap=True)
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("target", no_wrap=True)
    table.add_column("baseline", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right", no_wrap=True)
    table.add_column("pass/fail", no_wrap=True)
    for row in rows:
        status = row.status
        table.add_row(
            row.label,
            number(row.measured, row.unit),
            row.target.describe(row.unit) if row.target else "-",
            number(row.baseline, row.unit),
            "-" if row.ratio is None else f"{row.ratio:.2f}",
            f"[{_STYLE[status]}]{status}[/]",
        )
    return table


def baseline_legend(rows: Sequence[Row]) -> list[str]:
    """One line per row with a baseline, saying what the baseline and ratio are."""
    return [
        f"{row.label}: baseline = {row.baseline_name}; ratio = ours / baseline"
        for row in rows
        if row.baseline_name
    ]


def print_table(rows: Sequence[Row], title: str) -> None:
    """Write the table and its legend to stdout, wide enough not to fold when piped."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=PIPE_WIDTH)
    console.print(build_table(rows, title))
    for line in baseline_legend(rows):
        console.print(line, style="dim", highlight=False, markup=False)
    for row in rows:
        if row.status == "ERROR":
            console.print(f"{row.benchmark} crashed: {row.note}", markup=False)
