"""A cash sale: what is due, what was handed over, the change."""

from __future__ import annotations

from typing import Any

from appliance.screens.presenter_set import running_presenters
from appliance.screens.widgets import AppScreen, TouchButton


class CashScreen(AppScreen):
    """Total due, a keypad and quick notes for the cash handed over, change due live."""

    def on_kv_post(self, *_args: Any) -> None:
        cash = running_presenters().cash
        # Rebuilt only while shown: the cart changes on every scan, the buttons matter here.
        cash.bind(quick=lambda _p, rows: self._quick_buttons(rows) if self._shown() else None)
        self._built: list[dict[str, Any]] | None = None

    def on_pre_enter(self, *_args: Any) -> None:
        cash = running_presenters().cash
        cash.start()
        self._quick_buttons(cash.quick)

    def _shown(self) -> bool:
        return self.manager is not None and self.manager.current == self.name

    def _quick_buttons(self, rows: list[dict[str, Any]]) -> None:
        """One button per likely amount: exact, the next whole amount, the next notes."""
        if rows == self._built:
            return
        self._built = list(rows)
        holder = self.ids.quick
        holder.clear_widgets()
        cash = running_presenters().cash
        for row in rows:
            button = TouchButton(text=row["text"], kind="secondary")
            button.bind(on_release=lambda _b, amount=row["amount"]: cash.hand_over(amount))
            holder.add_widget(button)
