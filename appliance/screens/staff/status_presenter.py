"""Status for staff: sync with the hub, each device's health, and the day's takings.

The sync section also shows the card payments the terminal approved offline and has not
submitted yet, against the [payments] limits that keep card off once reached, and the
sales the hub refused (held in quarantine on this till). The devices section lists card
payments only a person can settle, and closes the terminal's day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kivy.clock import Clock, ClockEvent
from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, OptionProperty, StringProperty

from appliance.core.devices import DeviceHealth
from appliance.core.events import Event, SaleCommitted
from appliance.core.offline_limits import OfflineLimits, OfflineUsageLike, offline_block
from appliance.core.payment import TerminalTotals
from appliance.errors import ApplianceError
from appliance.screens.customer.background import run_in_background
from appliance.screens.i18n import Translator
from appliance.screens.presenters.context import ScreenContext
from appliance.service.offline_card_limits import limits_from
from appliance.store.day_totals import DayTotals, day_totals
from appliance.store.outbox import QuarantinedSale

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TerminalDayClosed(Event):
    """The card terminal's End-of-Day finished (totals) or was refused (problem)."""

    totals: TerminalTotals | None
    problem: str = ""


QUARANTINE_SHOWN = 5  # quarantined sales listed one by one; the count says how many in all
REFRESH_SECONDS = 2.0  # sync and devices while the screen is up: a COUNT and a lock each
# How often the hub's acknowledgements are looked at while the screen is not up, so "last
# successful sync" is right to within this much whatever screen was on show.
SYNC_WATCH_SECONDS = 5.0


def kind_name(tr: Translator, kind: str) -> str:
    """A device kind in words."""
    names = {
        "scanner": tr._("Barcode scanner"),
        "printer": tr._("Receipt printer"),
        "drawer": tr._("Cash drawer"),
        "card_reader": tr._("Card reader"),
        "payment_terminal": tr._("Payment terminal"),
        "scale": tr._("Scale"),
    }
    return names.get(kind, kind)


def state_name(tr: Translator, state: str) -> str:
    """A health state in words."""
    if state == "ok":
        return tr._("Working")
    if state == "degraded":
        return tr._("Needs attention")
    return tr._("Offline")


def tender_name(tr: Translator, kind: str) -> str:
    """A tender kind in words."""
    if kind == "cash":
        return tr._("Cash")
    if kind == "card":
        return tr._("Card")
    return tr._("Stored value")


def age_text(tr: Translator, age: timedelta) -> str:
    """How old, in whole hours from one hour on, else in minutes."""
    minutes = max(0, int(age.total_seconds() // 60))
    if minutes < 60:
        return tr._("{minutes} min").format(minutes=minutes)
    return tr._("{hours} h").format(hours=minutes // 60)


def offline_cards_row(
    tr: Translator,
    usage: OfflineUsageLike | None,
    limits: OfflineLimits,
    currency: str,
    now: datetime,
) -> dict[str, str]:
    """The status line of offline card payments not yet submitted, and their limits.

    "2, €45.00, oldest 3 h (limit €250.00 / 24 h)"; "offline" (red) once they keep card
    off, "degraded" while there are any. `usage` None: the journal could not be read.
    """
    label = tr._("Offline card payments")
    if usage is None:
        return {"label": label, "value": tr._("Could not be read"), "state": "degraded"}
    limit = tr._("limit {total} / {hours} h").format(
        total=tr.money(limits.max_total, currency),
        hours=f"{limits.max_age.total_seconds() / 3600:g}",
    )
    if usage.count <= 0:
        return {"label": label, "value": tr._("None ({limit})").format(limit=limit), "state": "ok"}
    oldest = age_text(tr, now - usage.oldest) if usage.oldest is not None else "?"
    value = tr._("{count}, {amount}, oldest {age} ({limit})").format(
        count=usage.count, amount=tr.money(usage.amount, currency), age=oldest, limit=limit
    )
    if offline_block(usage, limits, now):
        return {
            "label": label,
            "value": tr._("Card paused: {usage}").format(usage=value),
            "state": "offline",
        }
    return {"label": label, "value": value, "state": "degraded"}


def quarantine_rows(
    tr: Translator, count: int, sales: list[QuarantinedSale]
) -> list[dict[str, str]]:
    """Sales the hub refused: a red line saying what to do, then the first few one by one.

    None at all: no line (the outbox line already says everything went).
    """
    if count <= 0:
        return []
    rows = [
        {
            "label": tr._("Refused by the hub"),
            "value": tr.n_(
                "{count} sale kept on this till, not counted at the hub: tell the fleet admin",
                "{count} sales kept on this till, not counted at the hub: tell the fleet admin",
                count,
            ).format(count=count),
            "state": "offline",
        }
    ]
    for sale in sales[:QUARANTINE_SHOWN]:
        why = tr._("Unreadable") if sale.code == "invalid" else tr._("Conflict")
        rows.append(
            {
                "label": tr._("Receipt {receipt}").format(
                    receipt=sale.receipt_number or sale.sale_id
                ),
                "value": tr._("{why}: {reason}").format(why=why, reason=sale.reason),
                "state": "offline",
            }
        )
    return rows


class StaffStatusPresenter(EventDispatcher):
    """Rows for the three status sections; refreshed every 2 s while the screen is up."""

    section = OptionProperty("sync", options=["sync", "devices", "today"])
    hub_configured = BooleanProperty(False)
    sync_rows = ListProperty()  # {"label", "value", "state"}; state "ok", "degraded", "offline"
    device_rows = ListProperty()  # {"name", "kind", "state", "state_text", "reason"}
    today_rows = ListProperty()  # {"label", "value", "state"}
    closing_day = BooleanProperty(False)  # the terminal is closing its day
    day_note = StringProperty("")  # how the last End-of-Day went

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._outbox = ctx.stores.outbox
        self._versions = ctx.stores.catalog_versions
        self._payments = ctx.stores.payments
        self._offline_limits = limits_from(ctx.settings.payments)
        self._hub = ctx.services.hub
        self.hub_configured = self._hub is not None
        self._acked_upto = 0
        self._last_sync: datetime | None = None
        self._timer: ClockEvent | None = None
        self._today_stale = True
        ctx.bus.subscribe(SaleCommitted, self._committed)
        ctx.bus.subscribe(TerminalDayClosed, self._day_closed)
        ctx.session.bind(language=lambda *_args: self._relabel())
        if self._hub is not None:
            # A bound method: the clock holds it weakly, so it ends with this presenter.
            Clock.schedule_interval(self._tick_sync, SYNC_WATCH_SECONDS)

    def start(self) -> None:
        """The status screen came up: fill every section and keep them fresh."""
        self._today_stale = True
        self.refresh()
        if self._timer is None:
            self._timer = Clock.schedule_interval(self._tick, REFRESH_SECONDS)

    def stop(self) -> None:
        """The status screen went away: no more queries."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def show(self, section: str) -> None:
        """Switch to one of "sync", "devices", "today"."""
        self.section = section

    def close_terminal_day(self) -> None:
        """End-of-Day at the card terminal, off the main thread; refused while in doubt."""
        gate = self._ctx.services.app.card_gate
        if gate is None or self.closing_day:
            return
        bus = self._ctx.bus
        self.closing_day = True
        self.day_note = self._ctx.tr._("The card terminal is closing its day.")

        def close() -> None:
            try:
                bus.post(TerminalDayClosed(gate.end_of_day()))
            except ApplianceError as err:
                bus.post(TerminalDayClosed(None, str(err)))

        run_in_background("end-of-day", close)

    def refresh(self) -> None:
        """Re-read the sync state and device health; the day's totals only after a sale."""
        self._watch_sync()
        self.sync_rows = self._sync_rows()
        self.device_rows = [
            *(self._device_row(h) for h in self._ctx.services.devices.health()),
            *self._card_attention_rows(),
        ]
        if self._today_stale:
            self._today_stale = False
            self.today_rows = self._today_rows()

    def _tick(self, _dt: float) -> None:
        self.refresh()

    def _committed(self, _event: SaleCommitted) -> None:
        # The totals read every document of the day: only again when one was added, and then
        # at the next tick, not in the frame that hears of the sale (no reads on SaleCommitted).
        self._today_stale = True

    def _relabel(self) -> None:
        # The language changed every label: rebuild the rows now if they are on show.
        self._today_stale = True
        if self._timer is not None:
            self.refresh()

    def _tick_sync(self, _dt: float) -> None:
        self._watch_sync()

    def _watch_sync(self) -> None:
        if self._hub is None:
            return
        acked = self._hub.uploader.stats().acked_upto
        if acked > self._acked_upto:
            self._acked_upto = acked
            self._last_sync = datetime.now().astimezone()

    def _storage_row(self) -> dict[str, str]:
        """The data partition, from memory: free space, or what is wrong with it."""
        tr = self._ctx.tr
        status = self._ctx.services.app.storage.status
        if status.accepting_sales:
            free = tr._("{free} MiB free").format(free=status.free_bytes // (1024 * 1024))
            return {"label": tr._("Storage"), "value": free, "state": "ok"}
        state = "degraded" if status.state == "low" else "offline"
        return {"label": tr._("Storage"), "value": status.describe(), "state": state}

    def _sync_rows(self) -> list[dict[str, str]]:
        tr = self._ctx.tr
        rows = [self._storage_row()]
        try:
            depth = self._outbox.depth()
        except ApplianceError as err:  # a failing card: the row says so, the screen stays up
            log.error("outbox not read: %s", err)
            rows.append({"label": tr._("Waiting to send"), "value": str(err), "state": "offline"})
            return rows
        waiting = tr.n_("{count} document", "{count} documents", depth).format(count=depth)
        if self._hub is None:
            rows.append(
                {"label": tr._("Hub"), "value": tr._("No hub configured"), "state": "degraded"}
            )
        else:
            state = self._hub.link.state
            if state.ready:
                link, link_state = tr._("Online"), "ok"
            elif state.connected:
                link, link_state = tr._("Connected, waiting for the hub"), "degraded"
            else:
                link, link_state = tr._("Offline"), "offline"
            rows.append({"label": tr._("Hub"), "value": link, "state": link_state})
        rows.append(
            {
                "label": tr._("Waiting to send"),
                "value": waiting,
                "state": "ok" if depth == 0 else "degraded",
            }
        )
        rows += self._quarantine_rows()
        if self._hub is not None:
            last = tr.datetime(self._last_sync) if self._last_sync else tr._("Not since start")
            rows.append({"label": tr._("Last successful sync"), "value": last, "state": "ok"})
        version = self._versions.version()
        rows.append(
            {
                "label": tr._("Catalog version"),
                "value": str(version) if version else tr._("Local catalog only"),
                "state": "ok",
            }
        )
        rows.append(self._offline_cards_row())
        return rows

    def _quarantine_rows(self) -> list[dict[str, str]]:
        # A COUNT like the outbox's; the few rows shown are read only when there are any.
        tr = self._ctx.tr
        try:
            count = self._outbox.quarantine_count()
            sales = self._outbox.quarantined(QUARANTINE_SHOWN) if count else []
        except ApplianceError as err:
            log.error("sale quarantine not read: %s", err)
            return [{"label": tr._("Refused by the hub"), "value": str(err), "state": "offline"}]
        return quarantine_rows(tr, count, sales)

    def _offline_cards_row(self) -> dict[str, str]:
        # One aggregate over the journal's offline rows, like the outbox's COUNT above.
        try:
            usage = self._payments.offline_usage()
        except ApplianceError as err:
            log.error("offline card payments not read: %s", err)
            usage = None
        currency = self._ctx.checkout.cart.currency
        now = datetime.now(UTC)
        return offline_cards_row(self._ctx.tr, usage, self._offline_limits, currency, now)

    def _day_closed(self, event: TerminalDayClosed) -> None:
        tr = self._ctx.tr
        self.closing_day = False
        if event.totals is None:
            log.warning("End-of-Day not done: %s", event.problem)
            self.day_note = tr._("End-of-Day not done: {reason}").format(reason=event.problem)
            return
        totals = event.totals
        self.day_note = tr._("The terminal's day is closed: {count} payments, {amount}.").format(
            count=totals.count, amount=tr.money(totals.amount, self._ctx.checkout.cart.currency)
        )

    def _card_attention_rows(self) -> list[dict[str, str]]:
        """Card payments recovery could not settle: a person must (the gate's list, no disk)."""
        gate = self._ctx.services.app.card_gate
        if gate is None:
            return []
        tr = self._ctx.tr
        rows = []
        for line in gate.unresolved:
            reference, _, why = line.partition(": ")
            rows.append(
                {
                    "name": reference,
                    "kind": tr._("card payment"),
                    "state": "degraded",
                    "state_text": tr._("needs staff"),
                    "reason": why,
                }
            )
        return rows

    def _device_row(self, health: DeviceHealth) -> dict[str, str]:
        tr = self._ctx.tr
        return {
            "name": health.device,
            "kind": kind_name(tr, health.kind),
            "state": health.state,
            "state_text": state_name(tr, health.state),
            "reason": health.reason,
        }

    def _today_rows(self) -> list[dict[str, str]]:
        tr = self._ctx.tr
        now = datetime.now().astimezone()  # the till's local day
        currency = self._ctx.checkout.cart.currency
        assert now.tzinfo is not None
        ledger = self._ctx.services.app.ledger
        totals: DayTotals = day_totals(ledger, now.date(), now.tzinfo, currency=currency)

        def money(minor: int) -> str:
            return tr.money(minor, totals.currency or currency)

        rows = [
            {"label": tr._("Sales"), "value": str(totals.sales)},
            {"label": tr._("Takings before refunds"), "value": money(totals.gross)},
            {
                "label": tr._("Refunds"),
                "value": tr._("{count}: {amount}").format(
                    count=totals.refunds, amount=money(totals.refunded)
                ),
            },
            {"label": tr._("Net takings"), "value": money(totals.net)},
        ]
        rows += [
            {"label": tender_name(tr, kind), "value": money(amount)}
            for kind, amount in sorted(totals.by_tender.items())
        ]
        rows.append({"label": tr._("Items sold"), "value": str(totals.items)})
        return [dict(row, state="ok") for row in rows]
