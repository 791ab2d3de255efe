"""Parsing `python -X importtime` output into the slowest imports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class Imported:
    """One module's import cost in microseconds; depth 0 is imported by the program itself."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int


def parse(stderr: str) -> list[Imported]:
    """Every module `-X importtime` reported, in the order it printed them."""
    found = []
    for line in stderr.splitlines():
        if match := _LINE.match(line):
            self_us, cumulative_us, indent, module = match.groups()
            depth = (len(indent) - 1) // 2
            found.append(Imported(module, int(self_us), int(cumulative_us), depth))
    return found


def offenders(imports: list[Imported], top: int = 12) -> dict[str, Any]:
    """The slowest imports by own time and, for third-party packages, by cumulative time."""
    by_self = sorted(imports, key=lambda i: i.self_us, reverse=True)[:top]
    packages: dict[str, Imported] = {}
    for item in imports:
        # The outermost import of each top-level package carries its whole cost.
        root = item.module.split(".")[0]
        if root not in packages or item.cumulative_us > packages[root].cumulative_us:
            packages[root] = item
    by_package = sorted(packages.values(), key=lambda i: i.cumulative_us, reverse=True)[:top]
    return {
        "by_self_us": [_row(i) for i in by_self],
        "by_package_cumulative_us": [_row(i) for i in by_package],
        "sum_self_us": sum(i.self_us for i in imports),
    }


def _row(item: Imported) -> dict[str, object]:
    return {"module": item.module, "self_us": item.self_us, "cumulative_us": item.cumulative_us}
