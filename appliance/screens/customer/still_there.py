"""The "Are you still there?" dialog over a sale the customer seems to have left."""

from __future__ import annotations

from typing import Any

from appliance.screens.registry import load_kv_beside
from appliance.screens.widgets import InstantModal


class StillThereDialog(InstantModal):
    """A countdown and one big button; shows `app.idle`, answers with `app.idle.still_here()`."""

    def __init__(self, **kwargs: Any) -> None:
        load_kv_beside(__name__)  # its rules are needed before the first one is built
        kwargs.setdefault("auto_dismiss", False)  # only the button (or a scan) answers
        super().__init__(**kwargs)
