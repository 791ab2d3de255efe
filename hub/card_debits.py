"""The worker's handler of up/card-debit: judge, reconcile or void a debit, then answer it.

The answer goes out only after the ledger's commit, so a device that hears "approved"
finds the debit at the hub whatever happens next. A device that hears nothing asks again
with the same reference (or sends it as offline); the ledger answers a repeat as the first
time and takes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from peewee import Database

from appliance.errors import DecodeError
from appliance.mqtt import topics
from appliance.mqtt.payloads import CardDebit, CardDebitAnswer, decode, encode
from hub.card_ledger import CardAnswer, CardLedger, CardLedgerError
from hub.ingest import utc_naive

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]  # (topic, payload), QoS 1


def answer_payload(answer: CardAnswer) -> CardDebitAnswer:
    """The wire form of a ledger answer."""
    return CardDebitAnswer(
        reference=answer.reference,
        outcome=answer.outcome,
        reason=answer.reason,
        balance=answer.balance,
        points=max(0, answer.points),
        flag=answer.flag,
    )


class CardDebits:
    """Card debit requests from devices; the worker thread runs `on_request`."""

    def __init__(self, db: Database, publish: Publish) -> None:
        self._ledger = CardLedger(db)
        self._publish = publish

    def on_request(self, device: str, data: bytes) -> None:
        """Apply one CardDebit and answer it; DecodeError (nothing changed) when malformed."""
        request = decode(data, CardDebit)
        if request.device != device:
            raise DecodeError(f"a card debit on {device}'s topic names {request.device!r}")
        try:
            answer = self._ledger.request(
                device,
                reference=request.reference,
                card=request.card,
                amount=request.amount,
                currency=request.currency,
                mode=request.mode,
                taken_at=_when(request.taken_at),
            )
        except CardLedgerError as err:
            raise DecodeError(f"card debit {request.reference} from {device}: {err}") from err
        log.info(
            "card debit %s from %s (%s, %d): %s %s",
            request.reference,
            device,
            request.mode,
            request.amount,
            answer.outcome,
            answer.reason,
        )
        self._publish(topics.card_debit_answer(device), encode(answer_payload(answer)))


def _when(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return utc_naive(datetime.fromisoformat(text))
    except ValueError as err:
        raise DecodeError(f"a card debit's taken_at is not ISO 8601: {text!r}") from err
