"""Run a bench module in a new interpreter and read the JSON line it prints last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def json_from_module(
    module: str, arguments: list[str], *, timeout_s: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`python -m module arguments...` in the repository; its last stdout line, as JSON."""
    done = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(arguments)} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result
