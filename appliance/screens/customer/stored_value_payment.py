"""Paying with a stored-value card: debit the card, store the sale, undo the debit if not.

With a hub the debit waits for the hub's answer (or the offline rules) on the writer thread.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from appliance.core.card_balance import StoredValueLedger
from appliance.core.sale import Sale
from appliance.core.tender import Tender
from appliance.errors import CardOfflineError, StoreError, TenderError
from appliance.screens.presenters.context import ScreenContext

log = logging.getLogger(__name__)

Commit = Callable[[Tender], Sale | None]


class StoredValuePayment:
    """One tap pays the whole total; `problem` says why the last tap did not.

    `pay` runs on the store's writer thread (it debits, stores and may credit back).
    """

    def __init__(self, ctx: ScreenContext) -> None:
        self._ctx = ctx
        # The hub's cards when a hub is configured, else this device's; in the store's currency.
        self._accounts: StoredValueLedger = ctx.services.app.cards or ctx.stores.stored_value
        self.problem = ""
        self.short = 0  # what the last card held when that was not enough (else 0)

    def pay(self, uid: str, amount: int, commit: Commit) -> Sale | None:
        """Debit `amount` from the card, then `commit` the sale; None when either failed."""
        tr = self._ctx.tr
        self.problem, self.short = "", 0
        # One reference per tap: the debit is idempotent by it, and credit_back finds it.
        reference = f"sv-{uuid.uuid4().hex}"
        try:
            balance = self._accounts.debit(uid, amount, reference)
        except CardOfflineError as err:
            log.info("stored value card %s refused offline: %s", uid, err)
            self.problem = tr._(
                "This card cannot be checked right now. Please choose another way to pay."
            )
            return None
        except TenderError as err:
            log.info("stored value card %s refused: %s", uid, err)
            self.problem = self._refusal(uid, amount)
            return None
        except StoreError as err:
            log.error("stored value card %s not debited: %s", uid, err)
            self.problem = tr._("The payment did not go through. Please try again.")
            return None
        sale = commit(Tender("stored_value", amount, reference=reference))
        if sale is None:
            self._undo(reference)
            self.problem = tr._("The payment did not go through. Your card was not charged.")
            return None
        log.info("stored value card %s paid %d, %d left", uid, amount, balance)
        return sale

    def _refusal(self, uid: str, amount: int) -> str:
        tr = self._ctx.tr
        balance = self._accounts.balance(uid)
        if balance is None:
            return tr._("This card cannot be used to pay here. Please choose another way to pay.")
        if balance < amount:
            self.short = max(0, balance)
            currency = self._ctx.checkout.cart.currency
            return tr._(
                "Your card has {balance}, which is not enough. Please choose another way to pay."
            ).format(balance=tr.money(balance, currency))
        return tr._("The payment did not go through. Please try again.")

    def _undo(self, reference: str) -> None:
        try:
            self._accounts.credit_back(reference)
        except StoreError:
            # The money stays off the card: the log is what staff reconcile it from.
            log.critical("stored value payment %s debited but not credited back", reference)
