"""Dialogs over the till: how much discount, why a no-sale, what to call a parked cart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.properties import ListProperty

from appliance.screens.registry import load_kv_beside
from appliance.screens.staff.till_presenter import DISCOUNT_CHOICES, NO_SALE_REASONS
from appliance.screens.widgets import InstantModal


class TillDialog(InstantModal):
    """A dialog closed only by its own buttons (a stray touch must not lose a choice)."""

    def __init__(self, **kwargs: Any) -> None:
        load_kv_beside(__name__)  # the rules must exist before the first dialog is built
        kwargs.setdefault("auto_dismiss", False)
        super().__init__(**kwargs)


class DiscountDialog(TillDialog):
    """Percent buttons and a keypad for any other percentage; then `then(percent)`."""

    choices = ListProperty(DISCOUNT_CHOICES)

    def __init__(self, then: Callable[[int], object], **kwargs: Any) -> None:
        self._then = then
        super().__init__(**kwargs)

    def choose(self, percent: int) -> None:
        """A percentage was picked."""
        self.dismiss()
        self._then(percent)

    def choose_typed(self, digits: str) -> None:
        """The keypad's OK: the typed percentage."""
        if digits.isdigit() and int(digits) > 0:
            self.choose(int(digits))


class NoSaleDialog(TillDialog):
    """The reasons a drawer may be opened without a sale; then `then(reason)`."""

    reasons = ListProperty(NO_SALE_REASONS)

    def __init__(self, then: Callable[[str], object], **kwargs: Any) -> None:
        self._then = then
        super().__init__(**kwargs)

    def choose(self, reason: str) -> None:
        """A reason was picked."""
        self.dismiss()
        self._then(reason)


class ParkDialog(TillDialog):
    """A name for the parked cart (optional); then `then(label)`."""

    def __init__(self, then: Callable[[str], object], **kwargs: Any) -> None:
        self._then = then
        super().__init__(**kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.ids.name.value = ""  # the dialog is reused: no name from the last cart
        super().open(*args, **kwargs)

    def park(self, label: str) -> None:
        """Park under `label`."""
        self.dismiss()
        self._then(label)
