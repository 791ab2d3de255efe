"""Where python-escpos keeps its parsed printer profiles between starts.

By default it parses a large YAML file into a fresh temporary folder at every start
(about 0.4 s of CPU, and a folder left behind each time); a fixed folder parses it once.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"


def use_profile_cache(folder: Path) -> None:
    """Point python-escpos at `folder`; call before anything imports escpos."""
    if ENV in os.environ:
        return  # the operator chose one
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only place: escpos falls back to a temporary folder
    os.environ[ENV] = str(folder)
