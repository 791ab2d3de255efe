"""Cash counted by denomination: a row per note and coin, the pieces of each, the total."""

from __future__ import annotations

from typing import Any

from babel.numbers import get_decimal_symbol
from kivy.event import EventDispatcher
from kivy.properties import ListProperty, NumericProperty, StringProperty

from appliance.core.money import currency_exponent
from appliance.screens.i18n import Translator

MAX_PIECES = 9999  # four digits (the keypad takes no more): more coins than a drawer holds


class CashCounter(EventDispatcher):
    """The count on a shift's open or close screen; `counted()` is what the shift stores.

    A row is chosen by touching its count; the keypad then types that row's pieces, and
    - and + step them one by one.
    """

    rows = ListProperty()  # [{"denomination", "label", "count", "subtotal", "selected"}, ...]
    selected = NumericProperty(-1)  # the denomination the keypad types into, -1 for none
    total = NumericProperty(0)  # minor units
    total_text = StringProperty("")
    typed = StringProperty("")  # the keypad's digits for the chosen row

    def __init__(
        self, tr: Translator, currency: str, denominations: tuple[int, ...], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._tr = tr
        self._currency = currency
        self._unit = 10 ** currency_exponent(currency)
        self.denominations = tuple(sorted(set(denominations), reverse=True))
        self._pieces: dict[int, int] = {}
        self._show()

    def clear(self) -> None:
        """Nothing counted yet; the largest denomination is chosen for the keypad."""
        self._pieces = {}
        self.typed = ""
        self.selected = self.denominations[0] if self.denominations else -1
        self._show()

    def counted(self) -> dict[int, int]:
        """Pieces by denomination, the denominations counted only."""
        return {d: n for d, n in self._pieces.items() if n > 0}

    def pieces(self, denomination: int) -> int:
        """How many of `denomination` are counted."""
        return self._pieces.get(denomination, 0)

    def select(self, denomination: int) -> None:
        """The keypad types into this row next."""
        if denomination in self.denominations:
            self.typed = ""  # the keypad starts afresh: its echo below changes no count
            self.selected = denomination
            self._show()

    def select_next(self) -> None:
        """The keypad's Next: the next smaller denomination (after the smallest, the largest)."""
        if not self.denominations:
            return
        if self.selected not in self.denominations:
            self.select(self.denominations[0])
            return
        at = self.denominations.index(int(self.selected))
        self.select(self.denominations[(at + 1) % len(self.denominations)])

    def more(self, denomination: int) -> None:
        """One more piece of `denomination`."""
        self.set(denomination, self.pieces(denomination) + 1)

    def less(self, denomination: int) -> None:
        """One piece fewer of `denomination`."""
        self.set(denomination, self.pieces(denomination) - 1)

    def type(self, digits: str) -> None:
        """The keypad's digits are the chosen row's pieces."""
        clean = "".join(ch for ch in digits if ch.isdigit())[:4]
        if clean == self.typed or self.selected not in self.denominations:
            return  # the keypad echoing a reset, not a key
        self.typed = clean
        self.set(int(self.selected), int(clean) if clean else 0)

    def set(self, denomination: int, pieces: int) -> None:
        """`pieces` of `denomination` (kept within 0 and MAX_PIECES)."""
        if denomination not in self.denominations:
            raise ValueError(f"{denomination} is no denomination of {self._currency}")
        self._pieces[denomination] = max(0, min(MAX_PIECES, pieces))
        self._show()

    def refresh(self) -> None:
        """Show the texts again (the language changed)."""
        self._show()

    def denomination_text(self, denomination: int) -> str:
        """A note or coin as staff read it: "€20" for whole amounts, "€0.50" otherwise."""
        text = self._tr.money(denomination, self._currency)
        if denomination % self._unit == 0 and self._unit > 1:
            # babel writes "20,00 €"; a note says "20 €", and so does the till.
            zeros = get_decimal_symbol(self._tr.locale) + "0" * len(str(self._unit - 1))
            text = text.replace(zeros, "")
        return text

    def _show(self) -> None:
        money = self._tr.money
        self.total = sum(d * n for d, n in self._pieces.items())
        self.total_text = money(self.total, self._currency)
        self.rows = [
            {
                "denomination": d,
                "label": self.denomination_text(d),
                "count": str(self.pieces(d)),
                "subtotal": money(d * self.pieces(d), self._currency),
                "selected": d == self.selected,
                "counter": self,
            }
            for d in self.denominations
        ]
