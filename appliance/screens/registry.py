"""The explicit list of screens the app builds; no discovery, no magic.

The presenters are typed fields built by `appliance.screens.presenter_set.build_presenters`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from kivy.lang import Builder

from appliance.screens.customer import CUSTOMER_SCREENS
from appliance.screens.staff import STAFF_SCREENS

# name -> "module:Class"; every screen module has a `.kv` beside it.
SCREENS: dict[str, str] = {**CUSTOMER_SCREENS, **STAFF_SCREENS}


def built_ahead(mode: str) -> list[str]:
    """The screens built in idle frames after start: a kiosk's staff screens (a staff member
    logging in at a kiosk) are built when first shown, not kept in memory all day."""
    return list(CUSTOMER_SCREENS) if mode == "kiosk" else list(SCREENS)


def load_class(target: str) -> Any:
    """Import "module:Class"."""
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_kv_beside(module_name: str) -> None:
    """Load the `.kv` file next to a module, once per process."""
    module = importlib.import_module(module_name)
    assert module.__file__ is not None
    path = Path(module.__file__).with_suffix(".kv")
    if path.exists() and str(path) not in Builder.files:
        Builder.load_file(str(path))


def screen_class(name: str) -> Any:
    """The class of a registered screen, with its rules loaded."""
    target = SCREENS[name]
    load_kv_beside(target.partition(":")[0])
    return load_class(target)
