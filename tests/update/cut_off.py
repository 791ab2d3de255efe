"""A writer cut off mid-work, as by a power cut: what it committed is only in the WAL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def cut_off_after(database: Path, *statements: str) -> None:
    """A process writes `statements` and dies without closing: they stay in the WAL only."""
    script = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "db.execute('PRAGMA wal_autocheckpoint=0')\n"
        "for statement in sys.argv[2:]:\n"
        "    db.execute(statement)\n"
        "db.commit()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(database), *statements], check=True)
    assert Path(f"{database}-wal").stat().st_size > 0
