"""configure_logging: journald vs stderr selection, idempotence, level validation."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from systemd.journal import JournalHandler

from appliance.service.logs import configure_logging

# Runs configure_logging in a fresh interpreter, reports the target on stdout, logs once.
CHILD = textwrap.dedent(
    """
    import logging, sys
    from appliance.service.logs import configure_logging
    sys.stdout.write(configure_logging("INFO") + "\\n")
    sys.stdout.flush()
    if sys.argv[1] == "log":
        logging.getLogger("appliance.till").warning("drawer %s open", 3)
    """
)


def _stderr_stream_id() -> str:
    """JOURNAL_STREAM's value for whatever fd 2 is right now."""
    st = os.fstat(2)
    return f"{st.st_dev}:{st.st_ino}"


def _ours(root: logging.Logger) -> list[logging.Handler]:
    """Handlers configure_logging installed on ``root``."""
    return [h for h in root.handlers if h.get_name() == "appliance.service.logs"]


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[logging.Logger]:
    """Put the root logger's handlers and level back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in _ours(root):
        root.removeHandler(handler)
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_journal_stream_matching_stderr_selects_journald(
    restore_root_logger: logging.Logger,
) -> None:
    """JOURNAL_STREAM equal to fd 2's dev:ino means stderr is the journal."""
    target = configure_logging(environ={"JOURNAL_STREAM": _stderr_stream_id()})

    assert target == "journald"
    [handler] = _ours(restore_root_logger)
    assert isinstance(handler, JournalHandler)


@pytest.mark.parametrize("environ", [{"JOURNAL_STREAM": "0:0"}, {"JOURNAL_STREAM": ""}, {}])
def test_other_stream_selects_stderr(
    environ: dict[str, str], restore_root_logger: logging.Logger
) -> None:
    """A mismatched, empty or missing JOURNAL_STREAM means plain stderr."""
    assert configure_logging(environ=environ) == "stderr"
    [handler] = _ours(restore_root_logger)
    assert type(handler) is logging.StreamHandler


def test_calling_twice_leaves_one_handler(restore_root_logger: logging.Logger) -> None:
    """Reconfiguring replaces our handler and keeps handlers installed by others."""
    foreign = logging.NullHandler()
    restore_root_logger.addHandler(foreign)

    configure_logging(environ={})
    configure_logging("DEBUG", environ={"JOURNAL_STREAM": _stderr_stream_id()})
    configure_logging("WARNING", environ={})

    assert len(_ours(restore_root_logger)) == 1
    assert foreign in restore_root_logger.handlers
    assert restore_root_logger.level == logging.WARNING


def test_level_names_are_case_insensitive(restore_root_logger: logging.Logger) -> None:
    """'debug' is as good as 'DEBUG'."""
    configure_logging("debug", environ={})

    assert restore_root_logger.level == logging.DEBUG


def test_unknown_level_lists_allowed_names() -> None:
    """A typo in the config names the valid choices."""
    with pytest.raises(ValueError, match="DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        configure_logging("VERBOSE", environ={})


def test_record_reaches_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    """A record below the root level is dropped; one at it is written in the stderr format."""
    configure_logging("INFO", environ={})

    logging.getLogger("appliance.till").debug("hidden")
    logging.getLogger("appliance.till").info("sale %s closed", 42)

    err = capfd.readouterr().err
    assert "INFO appliance.till: sale 42 closed" in err
    assert "hidden" not in err


def _run_child(mode: str, journal_stream: str | None) -> subprocess.CompletedProcess[str]:
    """Run CHILD with its stderr on a pipe, optionally claiming that pipe is the journal."""
    read_fd, write_fd = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal_stream == "pipe":
        st = os.fstat(write_fd)
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    elif journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    with os.fdopen(read_fd) as reader:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, mode],
                stdout=subprocess.PIPE,
                stderr=write_fd,
                env=env,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            os.close(write_fd)
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, reader.read())


def test_child_whose_stderr_is_the_journal_stream_picks_journald() -> None:
    """End to end: the fstat of the inherited fd 2 matches, so journald is chosen."""
    proc = _run_child("quiet", "pipe")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "journald\n"


def test_child_with_stale_journal_stream_logs_to_stderr() -> None:
    """End to end: an inherited but stale JOURNAL_STREAM falls back to a formatted stderr line."""
    proc = _run_child("log", "1:1")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "stderr\n"
    assert proc.stderr.rstrip().endswith("WARNING appliance.till: drawer 3 open"), proc.stderr
