"""Run a bench module in a new interpreter and read the JSON line it prints last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def json_from_module(
    module: str,
    arguments: list[str],
    *,
    timeout_s: float,
    env: dict[str, str] | None = None,
    mark: str = "",
) -> Any:
    """`python -m module arguments...` in the repository: the JSON on the last stdout line
    that starts with `mark` (after the mark), for a child that also prints other lines."""
    done = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(mark)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {' '.join(arguments)} failed: {done.stderr.strip()[-3000:]}")
    return json.loads(lines[-1][len(mark) :])
