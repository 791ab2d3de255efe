"""Route the root logger to journald when run by systemd, else to stderr."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STDERR_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SYSLOG_IDENTIFIER = "appliance"

# Marks the handlers installed here, so a second call replaces them and leaves
# handlers added by others (e.g. pytest's caplog) alone.
_HANDLER_NAME = "appliance.service.logs"
_STDERR_FD = 2


def stderr_is_journal(environ: Mapping[str, str] | None = None) -> bool:
    """Whether fd 2 is the journal stream systemd set up (JOURNAL_STREAM=dev:ino)."""
    env = os.environ if environ is None else environ
    expected = env.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(_STDERR_FD)
    except OSError:
        return False
    # Compare against fd 2 itself: a child that redirected stderr inherits the
    # variable but no longer writes to the journal, and must not claim it does.
    return expected == f"{st.st_dev}:{st.st_ino}"


def _journal_handler() -> logging.Handler | None:
    """Return a JournalHandler, or None if systemd-python cannot be imported."""
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)
    return handler


def configure_logging(level: str = "INFO", *, environ: Mapping[str, str] | None = None) -> str:
    """Install one root handler at ``level`` and return "journald" or "stderr"."""
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")

    handler: logging.Handler | None = None
    target = "stderr"
    if stderr_is_journal(environ):
        handler = _journal_handler()
        # journald adds timestamp, priority and identifier itself, so no format here.
        target = "journald" if handler is not None else "stderr"
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(STDERR_FORMAT))
    handler.set_name(_HANDLER_NAME)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(name)
    log.debug("logging to %s at %s", target, name)
    return target
