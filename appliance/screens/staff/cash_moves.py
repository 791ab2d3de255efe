"""Cash in and cash out: which way, how much, and why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.properties import StringProperty

from appliance.screens.presenter_set import running_presenters
from appliance.screens.staff.cash_moves_presenter import OTHER
from appliance.screens.staff.dialogs import TillDialog
from appliance.screens.widgets import AppScreen, TouchButton


class ReasonButton(TouchButton):
    """A reason to touch; `key` is what is recorded."""

    key = StringProperty("")


class ReasonDialog(TillDialog):
    """A keyboard for a reason of one's own; then `then(text)`."""

    def __init__(self, text: str, then: Callable[[str], object], **kwargs: Any) -> None:
        self._then = then
        super().__init__(**kwargs)
        self.ids.reason.value = text

    def done(self, text: str) -> None:
        """Keep `text` as the reason (nothing typed: the dialog stays)."""
        if not text.strip():
            return
        self.dismiss()
        self._then(text)


class CashMovesScreen(AppScreen):
    """In or out, the amount on a keypad, a reason button each; Record."""

    def on_kv_post(self, *_args: Any) -> None:
        moves = running_presenters().cash_moves
        moves.bind(reasons=lambda _p, rows: self._reason_buttons(rows))
        self._reason_buttons(moves.reasons)

    def on_pre_enter(self, *_args: Any) -> None:
        running_presenters().cash_moves.start()

    def choose(self, key: str) -> None:
        """A reason button: a preset is chosen at once; Other asks for the words."""
        moves = running_presenters().cash_moves
        moves.choose(key)
        if key == OTHER:
            ReasonDialog(moves.other_text, moves.type_reason).open()

    def _reason_buttons(self, rows: list[dict[str, Any]]) -> None:
        holder = self.ids.reasons
        buttons = list(reversed(holder.children))
        if [b.key for b in buttons] != [row["key"] for row in rows]:
            holder.clear_widgets()
            buttons = []
            for row in rows:
                button = ReasonButton(key=row["key"])
                button.bind(on_release=lambda b: self.choose(b.key))
                holder.add_widget(button)
                buttons.append(button)
        for button, row in zip(buttons, rows, strict=True):
            button.text = row["text"]
            button.kind = "primary" if row["chosen"] else "secondary"
