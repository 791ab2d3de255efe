"""Stored value plus bank card at the kiosk: the card pays what it holds, a bank card the rest.

The bank card is asked first; the stored value is debited last, in the writer step that
commits the one sale with both tenders (StoredValuePayment.pay: debit, commit, undo the
debit if the commit fails). Once the bank card approved, its part is never dropped: the
customer taps again, or cancels and the terminal reverses it; a restart's card recovery
reverses one whose sale never committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.core.sale import Sale
from appliance.core.tender import Tender
from appliance.errors import ApplianceError
from appliance.screens.customer.stored_value_payment import StoredValuePayment
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.split_card_part import CardPart

log = logging.getLogger(__name__)

# Main thread: the payment screen's next state and the notice it shows.
Show = Callable[[str, str], None]
# Writer thread: commit the sale with these tenders for this staff id; None when refused.
Store = Callable[[list[Tender], str], Sale | None]


class SplitPayment:
    """One split at a time, driven by the payment presenter; main thread.

    It answers through `show(state, notice)` with the payment screen's split states
    (split_offer, split_card, split_saving, split_failed, split_undoing), "choose" when
    it is over, and "unavailable" when the terminal refused before charging anything.
    """

    def __init__(
        self,
        ctx: ScreenContext,
        stored_value: StoredValuePayment,
        *,
        show: Show,
        store: Store,
        staff: Callable[[], str],
        finish: Callable[[Sale], None],
    ) -> None:
        self._ctx = ctx
        self._stored_value = stored_value
        self._show = show
        self._store = store
        self._staff = staff  # who answers for the sale, read on the main thread
        self._finish = finish
        self._part = CardPart(ctx, self._answered, self._undone)
        self._uid = ""  # the stored-value card
        self._balance = 0  # what it held when it was tapped

    def owns(self, request: PaymentRequest) -> bool:
        """True for the bank card part's request: the single-card path leaves it alone."""
        return self._part.owns(request)

    def offer(self, uid: str, balance: int) -> None:
        """The card `uid` holds `balance`, less than the total: offer it with a bank card."""
        self._uid, self._balance = uid, balance

    def rest(self) -> int:
        """What the bank card pays: the total less what the stored-value card holds."""
        return self._ctx.checkout.totals().total - self._balance

    def pay(self) -> bool:
        """Ask the bank card for the rest; False when the terminal cannot be asked now."""
        checkout = self._ctx.checkout
        return self.rest() > 0 and self._part.ask(self.rest(), checkout.cart)

    def cancel_at_terminal(self) -> None:
        """Ask the terminal to stop the bank card part it has."""
        self._part.cancel()

    def debit(self, uid: str = "") -> None:
        """Debit the stored value (`uid`, or the card tapped first) and commit the sale."""
        card = self._part.tender
        if card is None:
            return
        uid = self._uid = uid or self._uid
        amount = self._ctx.checkout.totals().total - card.amount
        who, store, stored_value = self._staff(), self._store, self._stored_value
        self._show("split_saving", "")
        self._ctx.writes.run(
            lambda: stored_value.pay(uid, amount, lambda sv: store([card, sv], who)),
            self._stored,
        )

    def cancel(self) -> None:
        """Give up: the terminal reverses the bank card part, then the cart is free."""
        if self._part.undo():
            self._show("split_undoing", "")
        else:
            self._show("split_failed", self._not_undone())

    # -- answers (main thread) ---------------------------------------------------------

    def _answered(self, result: PaymentResult | None, _problem: str) -> None:
        tr = self._ctx.tr
        outcome = result.outcome if result is not None else None
        if outcome == "approved":
            self.debit()
        elif outcome is None:
            self._show("unavailable", "")
        elif outcome == "declined":
            self._show(
                "split_offer",
                tr._("The card was declined. Try again, or choose another way to pay."),
            )
        elif outcome == "cancelled":
            self._show("split_offer", tr._("The payment was cancelled. Nothing was charged."))
        else:  # in doubt: CardPart has recovery ask the terminal, which reverses a charge
            self._show(
                "split_offer",
                tr._(
                    "We could not confirm the card payment. "
                    "It is checked with the terminal and undone if it was charged."
                ),
            )

    def _stored(self, sale: Sale | None, _error: ApplianceError | None) -> None:
        if sale is not None:
            self._part.forget()  # settled in the sale's own transaction
            self._finish(sale)
            return
        # The bank card part stays approved in the journal: never dropped, only reversed.
        problem = self._stored_value.problem or self._ctx.tr._(
            "The payment did not go through. Please try again."
        )
        self._show("split_failed", problem)

    def _undone(self, undone: bool, problem: str) -> None:
        if undone:
            notice = self._ctx.tr._("Your card payment was undone. Nothing was charged.")
            self._show("choose", notice)
            return
        log.warning("split card part not undone: %s", problem)
        self._show("split_failed", self._not_undone())

    def _not_undone(self) -> str:
        return self._ctx.tr._(
            "The card payment could not be undone now. Please ask a member of staff."
        )
