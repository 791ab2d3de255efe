"""What every command shares: finding and loading the configuration."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from appliance.errors import ConfigError
from appliance.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    Settings,
    load_settings,
    resolve_config_path,
    simulated_settings,
)

F = TypeVar("F", bound=Callable[..., Any])
STATE_DIR_ENV = "APPLIANCE_STATE_DIR"
SIMULATE_ENV = "APPLIANCE_SIMULATE"


def config_options(command: F) -> F:
    """Add --config and --simulate to a command."""
    command = click.option(
        "--simulate",
        is_flag=True,
        envvar=SIMULATE_ENV,
        help=(
            "Simulated hardware; with no config file, use a demo store kept in"
            f" ${STATE_DIR_ENV} (default ~/.local/state/appliance/simulate)."
            f" ${SIMULATE_ENV}=1 does the same (a demo or training kiosk)."
        ),
    )(command)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help=f"Configuration file (default: $APPLIANCE_CONFIG or {DEFAULT_CONFIG_PATH}).",
    )(command)


def settings_for(config_path: str | None, simulate: bool) -> Settings:
    """Load the configuration; `--simulate` with no file named anywhere uses demo defaults."""
    path = resolve_config_path(config_path)
    named = config_path is not None or bool(os.environ.get(CONFIG_ENV))
    if simulate and not named and not path.exists():
        return simulated_settings(simulation_state_dir())
    return load_settings(path)


def simulation_state_dir() -> Path:
    """Where simulated appliances keep their database ($APPLIANCE_STATE_DIR overrides)."""
    if custom := os.environ.get(STATE_DIR_ENV):
        return Path(custom)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "appliance" / "simulate"


__all__ = ["ConfigError", "config_options", "settings_for", "simulation_state_dir"]
