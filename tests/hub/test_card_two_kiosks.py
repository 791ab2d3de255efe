"""One card, two kiosks, one of them offline: through the real broker and the real hub worker.

Each kiosk is the appliance's own stack (PahoHubLink, HubCardLedger, its SQLite store).
The offline kiosk pays from the card's last known balance at the moment the other kiosk
spends it online, restarts, and on reconnecting hands its debit to the hub, which takes
it below zero, flags the overdraft and loses nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peewee import Database, SqliteDatabase

from appliance.core.staff import badge_key
from appliance.errors import StoreError, TenderError
from appliance.mqtt.card_debits import HubCardLedger
from appliance.mqtt.link import PahoHubLink
from appliance.store.card_debits import CardDebitStore
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import migrate
from hub.card_ledger import CardEntry, CardLedger
from hub.server import HubServer
from tests.broker import MosquittoBroker
from tests.hub.test_server import TIMEOUT, wait_until

UID = "04A1B2C3"
CARD = badge_key(UID)


class Kiosk:
    """A kiosk's hub link and card ledger over its own database; `restart` is a new process."""

    def __init__(self, broker: MosquittoBroker, device: str, path: Path) -> None:
        self._broker, self.device = broker, device
        self.db: SqliteDatabase = open_database(path)
        migrate(self.db)
        self.store = CardDebitStore(self.db)
        self.sold: set[str] = set()  # the references its stored sales were paid with
        self.all_settled = 0  # times its ledger said nothing waits for the hub any more
        self.link, self.cards = self._start()

    def _start(self) -> tuple[PahoHubLink, HubCardLedger]:
        link = PahoHubLink(
            self.device,
            self._broker.host,
            self._broker.port,
            session_store=SessionStore(self.db),
        )
        cards = HubCardLedger(
            link,
            self.store,
            self.db,
            currency="EUR",
            timeout_s=TIMEOUT,
            offline_limit=2000,
            paid_references=lambda _since: set(self.sold),
            all_settled=self._all_settled,
        )
        return link, cards

    def _all_settled(self) -> None:
        self.all_settled += 1

    def online(self) -> None:
        """Connect and wait until the hub is heard online."""
        self.cards.start()
        self.link.open()
        assert self.link.wait_for(lambda s: s.ready, TIMEOUT)

    def stop(self) -> None:
        """Close the link and the ledger's worker (what is unsent stays in the store)."""
        self.cards.close()
        self.link.close()

    def sell(self, amount: int, reference: str) -> int:
        """Pay from the card, then store the sale (its reference, as the sale's tender)."""
        balance = self.cards.debit(UID, amount, reference)
        self.sold.add(reference)
        return balance

    def restart(self) -> None:
        """A new process on the same database."""
        self.stop()
        self.link, self.cards = self._start()


@pytest.fixture
def kiosks(broker: MosquittoBroker, tmp_path: Path) -> Iterator[tuple[Kiosk, Kiosk]]:
    """kiosk-1 and kiosk-2, not connected yet."""
    pair = (
        Kiosk(broker, "kiosk-1", tmp_path / "k1" / "appliance.db"),
        Kiosk(broker, "kiosk-2", tmp_path / "k2" / "appliance.db"),
    )
    yield pair
    for kiosk in pair:
        kiosk.stop()
        kiosk.db.close()


def hub_balance(hub_db: Database) -> int:
    """The card's balance at the hub."""
    view = CardLedger(hub_db).card(CARD)
    assert view is not None
    return view.balance


def test_two_kiosks_at_once_one_offline_the_hub_takes_both_and_flags_the_overdraft(
    serving_hub: HubServer, hub_db: Database, kiosks: tuple[Kiosk, Kiosk]
) -> None:
    CardLedger(hub_db).top_up(CARD, 1000, "EUR", "issue-1")
    one, two = kiosks
    one.online()
    two.online()
    # kiosk-2 sees the card online first: that answer is its last known balance.
    assert two.sell(300, "sv-two-online") == 700
    two.stop()
    assert not two.link.state.ready

    answers: dict[str, int] = {}

    def pay(kiosk: Kiosk, amount: int, reference: str) -> None:
        answers[reference] = kiosk.sell(amount, reference)

    at_once = [
        threading.Thread(target=pay, args=(one, 600, "sv-one-online")),
        threading.Thread(target=pay, args=(two, 500, "sv-two-offline")),
    ]
    for thread in at_once:
        thread.start()
    for thread in at_once:
        thread.join(TIMEOUT)
    assert answers == {"sv-one-online": 100, "sv-two-offline": 200}  # each as it knows
    assert hub_balance(hub_db) == 100  # the offline debit has not reached the hub
    assert [d.reference for d in two.store.to_send()] == ["sv-two-offline"]

    two.restart()  # the pending debit is durable: a new process sends it
    two.online()
    wait_until(lambda: not two.store.to_send())
    # Its health report is told at once that nothing waits any more; an online debit,
    # which never waited, tells it nothing.
    wait_until(lambda: two.all_settled == 1)
    assert one.all_settled == 0

    assert hub_balance(hub_db) == -400  # 1000 - 300 - 600 - 500: nothing lost
    [flagged] = CardLedger(hub_db).flagged()
    assert (flagged.reference, flagged.device, flagged.flag) == (
        "sv-two-offline",
        "kiosk-2",
        "overdraft",
    )
    entries = CardEntry.select(CardEntry.reference).tuples().execute(hub_db)
    assert sorted(r for (r,) in entries) == [
        "issue-1",
        "sv-one-online",
        "sv-two-offline",
        "sv-two-online",
    ]
    # Every answer refreshes what the kiosk knows: now it is the hub's balance.
    known = two.cards.known(UID)
    assert known is not None and known.balance == -400
    # Online, the hub now refuses the card at either kiosk.
    with pytest.raises(TenderError, match="insufficient balance"):
        one.cards.debit(UID, 1, "sv-one-more")
    assert hub_balance(hub_db) == -400


def test_a_sale_not_stored_gives_the_debit_back_at_the_hub(
    serving_hub: HubServer, hub_db: Database, kiosks: tuple[Kiosk, Kiosk]
) -> None:
    CardLedger(hub_db).top_up(CARD, 1000, "EUR", "issue-1")
    one, _ = kiosks
    one.online()
    assert one.cards.debit(UID, 400, "sv-1") == 600
    assert one.cards.debit(UID, 400, "sv-1") == 600  # a retried request debits once
    one.cards.credit_back("sv-1")
    wait_until(lambda: not one.store.to_send())
    assert hub_balance(hub_db) == 1000


def test_offline_a_card_pays_only_within_its_daily_limit_and_known_balance(
    broker: MosquittoBroker, kiosks: tuple[Kiosk, Kiosk]
) -> None:
    one, _ = kiosks
    one.store.remember(CARD, "EUR", 5000, 0, datetime.now(UTC))  # an answer from earlier
    assert not one.link.state.ready
    assert one.cards.debit(UID, 1500, "sv-1") == 3500
    with pytest.raises(TenderError, match="offline limit"):
        one.cards.debit(UID, 600, "sv-2")  # 2100 today: over the 2000 limit
    assert one.cards.debit(UID, 500, "sv-3") == 3000
    with pytest.raises(TenderError, match="unknown card"):
        one.cards.debit("0BADC0DE", 100, "sv-4")
    assert [d.reference for d in one.store.to_send()] == ["sv-1", "sv-3"]


def test_a_debit_whose_sale_a_crash_lost_is_given_back_at_the_next_start(
    serving_hub: HubServer, hub_db: Database, kiosks: tuple[Kiosk, Kiosk]
) -> None:
    CardLedger(hub_db).top_up(CARD, 1000, "EUR", "issue-1")
    one, _ = kiosks
    one.online()
    assert one.sell(100, "sv-sold") == 900
    assert one.cards.debit(UID, 400, "sv-crash") == 500  # approved; the process dies here
    assert hub_balance(hub_db) == 500

    one.restart()
    one.online()
    wait_until(lambda: hub_balance(hub_db) == 900)  # the unsold debit given back, once
    wait_until(lambda: not one.store.to_send())
    assert one.store.after("sv-crash") is None and one.store.after("sv-sold") is not None
    assert one.store.unchecked_before(datetime.now(UTC)) == []
    one.restart()  # a later start finds nothing left to check or give back
    one.online()
    assert one.cards.wait_idle(TIMEOUT)
    assert hub_balance(hub_db) == 900


def test_a_card_in_another_currency_is_forgotten_and_never_pays_offline(
    serving_hub: HubServer, hub_db: Database, kiosks: tuple[Kiosk, Kiosk]
) -> None:
    CardLedger(hub_db).top_up(CARD, 5000, "CHF", "issue-chf")
    one, _ = kiosks
    one.store.remember(CARD, "EUR", 5000, 0, datetime.now(UTC))  # a stale word on it
    one.online()
    with pytest.raises(TenderError, match="wrong currency"):
        one.sell(1500, "sv-eur")
    assert one.cards.known(UID) is None
    one.stop()  # offline now: the kiosk has no balance of this card to pay from
    with pytest.raises(TenderError, match="unknown card"):
        one.sell(1500, "sv-eur-offline")
    assert one.store.to_send() == []
    assert hub_balance(hub_db) == 5000


def test_an_approval_this_kiosk_could_not_record_is_given_back_at_once(
    serving_hub: HubServer,
    hub_db: Database,
    kiosks: tuple[Kiosk, Kiosk],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    CardLedger(hub_db).top_up(CARD, 1000, "EUR", "issue-1")
    one, _ = kiosks
    one.online()

    def disk_fails(*_args: object, **_kwargs: object) -> None:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(one.store, "confirmed", disk_fails)
    with pytest.raises(StoreError):
        one.sell(400, "sv-unrecorded")  # the hub approved it; the kiosk shows a failure
    wait_until(lambda: hub_balance(hub_db) == 1000)  # so the hub gives it back, in this run
    wait_until(lambda: not one.store.to_send())
    monkeypatch.undo()
    assert one.sell(400, "sv-again") == 600  # the customer's second try is the only charge
    assert hub_balance(hub_db) == 600
