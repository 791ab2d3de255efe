"""Cash in and cash out: an amount, a reason (a preset or typed), by the staff member."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, OptionProperty, StringProperty

from appliance.core.shift import CashMovement, MoveKind
from appliance.errors import ApplianceError
from appliance.screens.i18n import Translator
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.messages import staff_message
from appliance.screens.presenters.shift_state import ShiftState
from appliance.screens.staff.shift_open_presenter import open_drawer_for

log = logging.getLogger(__name__)

MAX_DIGITS = 7  # typed in minor units: 99,999.99 is more than a pop-up till moves at once
OTHER = "other"  # the reason is typed on the keyboard
# The preset reasons by direction; the key is what the shift book and the journal keep.
REASONS: dict[str, tuple[str, ...]] = {
    "in": ("change_top_up", "float_top_up", OTHER),
    "out": ("bank_deposit", "supplier_paid", "expenses", OTHER),
}


def reason_text(tr: Translator, key: str) -> str:
    """A preset reason in words; a typed reason as it is."""
    names = {
        "change_top_up": tr._("Change top-up"),
        "float_top_up": tr._("Float top-up"),
        "bank_deposit": tr._("Bank deposit"),
        "supplier_paid": tr._("Supplier paid"),
        "expenses": tr._("Expenses"),
        OTHER: tr._("Other reason"),
    }
    return names.get(key, key)


class CashMovesPresenter(EventDispatcher):
    """The cash in/out screen: which way, how much, why; Record stores it and opens the drawer."""

    kind = OptionProperty("out", options=["in", "out"])
    typed = StringProperty("")  # keypad digits in minor units
    amount_text = StringProperty("")
    reason = StringProperty("")  # a key of REASONS, "" until chosen
    other_text = StringProperty("")  # the typed reason when `reason` is OTHER
    reasons = ListProperty()  # [{"key", "text", "chosen"}] for the buttons
    can_save = BooleanProperty(False)
    saving = BooleanProperty(False)
    message = StringProperty("")

    def __init__(self, ctx: ScreenContext, shift: ShiftState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._shift = shift
        ctx.session.bind(language=lambda *_args: self._update())
        self._update()

    def start(self, kind: MoveKind = "out") -> None:
        """The screen came up: nothing typed, no reason chosen."""
        self.kind = kind
        self.typed = ""
        self.reason = ""
        self.other_text = ""
        self.message = ""
        self._update()

    def set_kind(self, kind: MoveKind) -> None:
        """Cash in or cash out; a reason of the other way is dropped."""
        self.kind = kind
        if self.reason not in REASONS[kind]:
            self.reason = ""
        self._update()

    def type(self, digits: str) -> None:
        """The keypad's digits changed."""
        self.typed = "".join(ch for ch in digits if ch.isdigit())[:MAX_DIGITS]
        self._update()

    def choose(self, reason: str) -> None:
        """A preset reason (or OTHER, to type one) was touched."""
        if reason not in REASONS[self.kind]:
            raise ValueError(f"unknown reason {reason!r} for cash {self.kind}")
        self.reason = reason
        self._update()

    def type_reason(self, text: str) -> None:
        """The keyboard's text: the reason when OTHER is chosen."""
        self.other_text = text
        self._update()

    @property
    def amount(self) -> int:
        """The typed amount in minor units."""
        return int(self.typed) if self.typed else 0

    @property
    def reason_kept(self) -> str:
        """What the shift book keeps as the reason: the preset's key, or the typed words."""
        return str(self.other_text).strip() if self.reason == OTHER else str(self.reason)

    def save(self) -> bool:
        """Record the movement (off the main thread); then the drawer opens for the cash."""
        tr = self._ctx.tr
        self._update()
        staff = self._ctx.session.staff
        if staff is None:
            self.message = tr._("Please log in first.")
            return False
        if not self._shift.is_open:
            self.message = tr._("No shift is open on this till.")
            return False
        if not self.can_save or self.saving:
            return False
        kind, amount, reason = self.kind, self.amount, self.reason_kept
        shifts = self._ctx.stores.shifts
        self.saving = True
        self.message = ""
        self._ctx.writes.run(
            lambda: shifts.move_cash(kind, amount, reason, staff.staff_id), self._saved
        )
        return True

    def cancel(self) -> None:
        """Back to the till; nothing recorded."""
        self._ctx.session.go("till")

    def _saved(self, move: CashMovement | None, error: ApplianceError | None) -> None:
        tr = self._ctx.tr
        self.saving = False
        if move is None:
            self.message = staff_message(tr, error)
            return
        log.info("cash %s of %d: %s, by %s", move.kind, move.amount, move.reason, move.staff)
        open_drawer_for(self._ctx, f"cash_{move.kind}")
        amount = tr.money(move.amount, self._shift.currency)
        text = (
            tr._("Cash in of {amount} recorded: {reason}.")
            if move.kind == "in"
            else tr._("Cash out of {amount} recorded: {reason}.")
        )
        self._ctx.session.go("till")
        self._ctx.session.say(text.format(amount=amount, reason=reason_text(tr, move.reason)))

    def _update(self) -> None:
        tr = self._ctx.tr
        self.amount_text = tr.money(self.amount, self._shift.currency)
        self.reasons = [
            {"key": key, "text": reason_text(tr, key), "chosen": key == self.reason}
            for key in REASONS[self.kind]
        ]
        self.can_save = self.amount > 0 and bool(self.reason_kept)
