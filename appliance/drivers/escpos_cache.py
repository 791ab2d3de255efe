"""Where python-escpos keeps its parsed printer profiles between starts.

By default it parses a large YAML file into a fresh temporary folder at every start
(about 0.4 s of CPU, and a folder left behind each time); a fixed folder parses it once.
python-escpos writes that file in place, without a sync, and trusts whatever it finds: a
power cut, a full disk or an fsck after SD-card errors can leave it empty or cut short,
and then every import of escpos fails. A broken one is removed before escpos reads it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"
PATTERN = "*.capabilities.pickle"
PICKLE_STOP = b"."  # the last opcode of every complete pickle


def use_profile_cache(folder: Path) -> None:
    """Point python-escpos at `folder`; call before anything imports escpos."""
    if ENV in os.environ:
        return  # the operator chose one
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only place: escpos falls back to a temporary folder
    discard_broken_profiles(folder)
    os.environ[ENV] = str(folder)


def discard_broken_profiles(folder: Path) -> list[Path]:
    """Remove profile files that are empty or cut short (escpos remakes them); the removed."""
    removed = []
    for path in folder.glob(PATTERN):
        try:
            with path.open("rb") as profile:
                size = profile.seek(0, os.SEEK_END)
                if size:
                    profile.seek(-1, os.SEEK_END)
                whole = size > 0 and profile.read(1) == PICKLE_STOP
            if not whole:
                path.unlink()
                removed.append(path)
                log.warning("printer profile cache %s was broken (%d bytes): removed", path, size)
        except OSError as err:
            log.warning("printer profile cache %s not checked: %s", path, err)
    return removed
