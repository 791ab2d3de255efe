"""HubCardLedger: stored-value cards paid through the hub, request and answer over MQTT.

Online, a debit goes to the hub on up/card-debit and the caller (the store's writer thread,
never the main thread) waits up to `timeout_s` for the answer on down/card-debit: approved
or declined, with the card's balance and points. No link, or no answer in time, and the
kiosk decides offline from the card's last known balance within its daily limit
(appliance.core.card_balance); such a debit is written to the store first and sent with
mode "offline" until the hub answers it, on every reconnect and every RETRY_S. A void (a
sale not stored after its debit) travels the same way. The reference is the same
throughout, so a late answer to the online request and the offline resend settle one
debit once. An online request is on record (`asking`) before it leaves, so that the money
the hub may take for it is never lost track of: when the offline rules then refuse, the
request is voided (the hub may still approve it late), and each start voids the debits of
an earlier run that paid for no stored sale (it died between the two).

Threads: `debit`, `balance`, `credit_back` and `after` run on the caller's thread; paho's
thread only wakes a waiting debit and queues the answer; the worker thread sends and
settles.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from peewee import Database

from appliance.core.card_balance import CardDebitResult, KnownCard
from appliance.core.clock import Clock, SystemClock
from appliance.core.sale import Sale
from appliance.errors import CardOfflineError, StoreError, TenderError
from appliance.mqtt import topics
from appliance.mqtt.link import HubLink, LinkState
from appliance.mqtt.payloads import CardDebit, CardDebitAnswer, encode
from appliance.mqtt.step_worker import StepWorker
from appliance.store.card_debits import CardDebitStore
from appliance.store.stored_value import card_key

log = logging.getLogger(__name__)

RETRY_S = 30.0  # unanswered offline debits and voids go again this often while connected
# A sale is stamped just after its debit by the kiosk's clock, which a start may have set
# back: its sale is looked for from this long before the debit.
CLOCK_MARGIN = timedelta(days=1)
# What a start looks its debits' sales up in: stored_value tender references of the sales
# stored since a moment.
PaidReferences = Callable[[datetime], set[str]]
_REFUSALS = {
    "insufficient_funds": "insufficient balance",
    "unknown_card": "unknown card",
    "wrong_currency": "wrong currency",
    "conflict": "reference used for another payment",
}


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    answer: CardDebitAnswer | None = None


def stored_value_references(sales: Iterable[Sale]) -> set[str]:
    """The references of the stored-value tenders that paid `sales`."""
    return {t.reference for sale in sales for t in sale.tenders if t.kind == "stored_value"}


class HubCardLedger:
    """The StoredValueLedger of a kiosk whose cards the hub holds; thread-safe."""

    def __init__(
        self,
        link: HubLink,
        store: CardDebitStore,
        db: Database,
        *,
        currency: str,
        timeout_s: float,
        offline_limit: int,
        paid_references: PaidReferences,
        all_settled: Callable[[], None] = lambda: None,
        clock: Clock | None = None,
    ) -> None:
        self._link = link
        self._all_settled = all_settled  # worker thread: nothing waits for the hub any more
        self._paid_references = paid_references
        self._store = store
        self._currency = currency
        self._timeout_s = timeout_s
        self._limit = offline_limit
        self._clock = clock or SystemClock()
        self._waiting: dict[str, _Waiter] = {}
        self._lock = threading.Lock()
        self._ready = False  # paho's thread only
        self._started = self._clock.now().astimezone(UTC)
        self._worker = StepWorker("card-debits", db, self._send, RETRY_S, log)
        device = link.device_id
        link.dispatcher.on(topics.card_debit_answer(device), self._answered)
        link.watch(self._state_changed)

    # --- lifecycle ---

    def start(self) -> None:
        """Start the worker that sends what the hub has not answered yet."""
        self._worker.start()
        self._worker.put(self._void_unsold)
        self._worker.put(self._send)

    def close(self) -> None:
        """Stop the worker; what is unanswered stays in the store for the next start."""
        self._worker.stop(5.0)

    def wait_idle(self, timeout: float) -> bool:
        """Block until the worker ran every queued step (tests)."""
        return self._worker.wait_idle(timeout)

    # --- the StoredValueLedger port (the caller's thread) ---

    @property
    def currency(self) -> str:
        """The currency balances are kept in."""
        return self._currency

    def balance(self, uid: str) -> int | None:
        """The last known balance less what the card paid here offline since."""
        try:
            return self._store.available(card_key(uid))
        except TenderError:
            return None

    def known(self, uid: str) -> KnownCard | None:
        """The card as the hub last described it."""
        try:
            return self._store.known(card_key(uid))
        except TenderError:
            return None

    def debit(self, uid: str, amount: int, reference: str) -> int:
        """Pay from the card: the hub decides when it answers in time, else the offline rules."""
        if amount <= 0:
            raise TenderError("a payment must be a positive amount")
        card = card_key(uid)
        now = self._clock.now()
        day, at = now.astimezone().date(), now.astimezone(UTC)
        if not self._link.state.ready:
            return self._offline(reference, card, amount, day=day, at=at)
        self._store.asking(reference, card, amount, self._currency, day=day, at=at)
        try:
            return self._decide(reference, card, amount, day=day, at=at)
        except (TenderError, CardOfflineError, StoreError):
            # The request may yet reach the hub, or was approved and not recorded here:
            # take it back, so the customer who tries again is not charged twice.
            self._void_after_asking(reference)
            raise

    def _decide(self, reference: str, card: str, amount: int, *, day: date, at: datetime) -> int:
        """An online request asked: the hub's answer, or the offline rules when none came."""
        answer = self._ask(reference, card, amount)
        if answer is None:
            return self._offline(reference, card, amount, day=day, at=at)
        if answer.outcome in ("approved", "applied"):
            self._store.confirmed(
                reference,
                card,
                amount,
                self._currency,
                balance=answer.balance,
                points=answer.points,
                day=day,
                at=at,
            )
            return answer.balance
        self._store.declined(reference)
        if answer.reason == "insufficient_funds":
            self._store.remember(card, self._currency, answer.balance, answer.points, at)
        elif answer.reason == "wrong_currency":
            # Its balance is in another currency: never a base for paying offline here.
            self._store.forget(card)
        raise TenderError(_REFUSALS.get(answer.reason, f"the hub said {answer.outcome}"))

    def _offline(self, reference: str, card: str, amount: int, *, day: date, at: datetime) -> int:
        """Pay under the offline rules; the debit goes to the hub once it listens."""
        balance, _points = self._store.take_offline(
            reference,
            card,
            amount,
            self._currency,
            limit=self._limit,
            day=day,  # the limit counts by the kiosk's own day
            at=at,
        )
        self._worker.put(self._send)
        return balance

    def _void_after_asking(self, reference: str) -> None:
        """Best effort; what fails here, the next start's check of unsold debits voids."""
        try:
            voided = self._store.void(reference)
        except StoreError as err:
            log.error("card debit %s not voided now (the next start does): %s", reference, err)
            return
        if voided:
            self._worker.put(self._send)

    def credit_back(self, reference: str) -> None:
        """Have the hub give back a debit whose sale was not stored (durably, until answered)."""
        if self._store.void(reference):
            self._worker.put(self._send)
        else:
            log.info("card debit %s: nothing to give back", reference)

    def after(self, reference: str) -> CardDebitResult | None:
        """The card's balance and points as known after the debit `reference`."""
        return self._store.after(reference)

    def _ask(self, reference: str, card: str, amount: int) -> CardDebitAnswer | None:
        """The hub's answer to an online debit; None when it did not come in time."""
        waiter = _Waiter()
        with self._lock:
            self._waiting[reference] = waiter
        try:
            request = CardDebit(
                device=self._link.device_id,
                reference=reference,
                card=card,
                amount=amount,
                currency=self._currency,
                mode="online",
            )
            topic = topics.card_debit_up(self._link.device_id)
            if not self._link.publish(topic, encode(request), qos=1):
                return None
            if not waiter.done.wait(self._timeout_s):
                log.warning("card debit %s: no answer in %.1f s", reference, self._timeout_s)
                return None
            return waiter.answer
        finally:
            with self._lock:
                self._waiting.pop(reference, None)

    # --- paho's thread ---

    def _answered(self, answer: CardDebitAnswer) -> None:
        with self._lock:
            waiter = self._waiting.get(answer.reference)
        if waiter is not None:
            waiter.answer = answer
            waiter.done.set()
        self._worker.put(lambda: self._settle(answer))

    def _state_changed(self, state: LinkState) -> None:
        # Again whenever the link becomes ready: what was sent while no hub listened is lost.
        if state.ready and not self._ready:
            self._worker.put(self._send)
        self._ready = state.ready

    # --- the worker thread ---

    def _void_unsold(self) -> None:
        """Void the debits an earlier run took for sales it never stored (the first step)."""
        try:
            unchecked = self._store.unchecked_before(self._started)
            if not unchecked:
                return
            paid = self._paid_references(min(at for _r, at in unchecked) - CLOCK_MARGIN)
            for reference, _at in unchecked:
                if reference in paid:
                    self._store.sale_found(reference)
                else:
                    log.warning(
                        "card debit %s paid no stored sale: the hub gives it back", reference
                    )
                    self._store.void_unsold(reference)
        except StoreError as err:
            log.error("card debits not checked against the sales: %s", err)

    def _send(self) -> None:
        if not self._link.state.ready:
            return
        device = self._link.device_id
        try:
            rows = self._store.to_send()
        except StoreError as err:
            log.error("card debits not read: %s", err)
            return
        for row in rows:
            request = CardDebit(
                device=device,
                reference=row.reference,
                card=row.card,
                amount=row.amount,
                currency=row.currency,
                mode="offline" if row.mode == "offline" else "void",
                taken_at=row.taken_at,
            )
            if not self._link.publish(topics.card_debit_up(device), encode(request), qos=1):
                return  # the link dropped: the next ready state sends again

    def _settle(self, answer: CardDebitAnswer) -> None:
        # A declined answer settles nothing: an online request that timed out was taken
        # offline under the same reference, and the hub takes that one whatever it holds.
        if answer.outcome == "declined":
            return
        if answer.flag:
            log.warning("card debit %s: the hub flagged %s", answer.reference, answer.flag)
        waited = self._store.settle(
            answer.reference,
            voided=answer.outcome == "voided",
            balance=answer.balance,
            points=answer.points,
            currency=self._currency,
            at=self._clock.now(),
            # A card in another currency: its balance is no base for paying offline here.
            card_known=answer.flag != "wrong_currency",
        )
        if waited and not (left := self._store.waiting()).debits and not left.voids:
            self._all_settled()
