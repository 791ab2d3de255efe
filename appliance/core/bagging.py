"""The bagging-area check: what the scale under the bags should show after each scan.

A self-checkout may have a second scale under the bagging area. Each item scanned is
expected to be put there: the settled weight should rise by the product's expected weight
(within a tolerance), or by any settled amount when the product has none. An item voided
after it was bagged is expected to be taken out again. Anything else is an alert:

- unexpected_item: the weight rose and nothing scanned explains it;
- item_removed: the weight fell and nothing voided explains it;
- not_bagged: a scanned item was not put down within `help_after` seconds.

It is the most hated feature of self-checkout, so the model is forgiving on purpose:
- a change is only a change past the noise threshold (a bag settling, a receipt dropped);
- a weight that does not fit must stay unexplained for `alert_after` seconds before it is
  an alert: a customer putting down two items, or one item slowly, passes through
  in-between weights that explain nothing;
- the customer gets a gentle prompt after `prompt_after` seconds before anyone is called;
- a weight back where it should be ends an unexpected item or a removal by itself;
- until the first scan of a sale, every settled weight is accepted: the last customer's
  bags taken away, this customer's own bag put down.

While the bagging scale is out of order (offline, or not heard from yet) the check is
suspended: nothing is expected, nothing alerts, and pay never waits for it; it starts
again from the bag as it is once the scale answers.

Modes: "off" checks nothing; "log_only" decides exactly as "enforce" does, but
`BaggingStatus.pauses` and `prompts` stay False, so the kiosk never stops a customer for it.
Pure: fed stable weights and cart changes with the monotonic time; one thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from appliance.core.events import Event

BaggingMode = Literal["off", "log_only", "enforce"]
BaggingState = Literal[
    "settled", "waiting", "prompting", "unexpected_item", "item_removed", "not_bagged", "suspended"
]
ALERTS: frozenset[BaggingState] = frozenset({"unexpected_item", "item_removed", "not_bagged"})
# What staff may do at an alert: accept the bag as it is, or stop expecting the items
# waiting (a crate of water left in the trolley), for them or for the rest of the sale.
StaffAction = Literal["clear", "skip_item", "skip_sale"]

# A scanned item may take this long to reach the bag before the customer is reminded.
PROMPT_AFTER_SECONDS = 8.0
# ...and this long before staff are called.
HELP_AFTER_SECONDS = 30.0
# An unexplained weight must last this long to be an alert (see the module docstring).
ALERT_AFTER_SECONDS = 2.0
# A product's expected weight: from a gram to a 50 kg sack; its tolerance up to 5 kg.
MAX_BAG_GRAMS = 50_000
MAX_BAG_TOLERANCE = 5_000


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far a bagged weight may be from the expected one: the larger of grams and percent."""

    grams: int = 20
    percent: int = 10

    def __post_init__(self) -> None:
        if self.grams < 0 or not 0 <= self.percent <= 100:
            raise ValueError(
                f"a tolerance needs grams >= 0 and percent 0..100, got {self.grams} g"
                f" and {self.percent} %"
            )

    def around(self, expected: int) -> int:
        """The grams either way allowed around `expected` grams."""
        return max(self.grams, abs(expected) * self.percent // 100)


@dataclass(frozen=True, slots=True)
class BagItem:
    """One change the bagging area should show: an item scanned, or taken off the cart.

    `grams` is the expected weight (None: not known, any settled change counts);
    `tolerance` the grams either way allowed for it (None: the store's default).
    """

    sku: str
    name: str
    grams: int | None = None
    tolerance: int | None = None
    removed: bool = False  # voided: expected to be taken out of the bag

    @property
    def signed_grams(self) -> int:
        """The expected change of the bag's weight: negative for an item taken out."""
        return -(self.grams or 0) if self.removed else (self.grams or 0)


@dataclass(frozen=True, slots=True)
class BaggingStatus:
    """What the check says now; `weight` and `accepted` are grams on the bagging scale."""

    mode: BaggingMode
    state: BaggingState
    weight: int  # the last stable weight
    accepted: int  # the weight everything scanned so far explains
    pending: tuple[BagItem, ...] = ()
    skipping_sale: bool = False

    @property
    def alert(self) -> bool:
        """Something unexplained happened in the bagging area (logged in every mode)."""
        return self.state in ALERTS

    @property
    def pauses(self) -> bool:
        """The sale waits for staff: an alert while enforcing."""
        return self.mode == "enforce" and self.alert

    @property
    def prompts(self) -> bool:
        """The customer is reminded to bag the item: it is late, and the check is enforced."""
        return self.mode == "enforce" and self.state == "prompting"

    @property
    def waiting(self) -> bool:
        """Items scanned wait to be bagged (pay waits for them while enforcing)."""
        return self.mode == "enforce" and bool(self.pending) and not self.alert

    @property
    def change(self) -> int:
        """Grams on the scale that nothing explains (negative: missing)."""
        return self.weight - self.accepted


@dataclass(frozen=True, slots=True)
class BaggingWeighed(Event):
    """The bagging scale settled on a new weight, in grams (posted by its polling thread)."""

    grams: int


@dataclass(frozen=True, slots=True)
class BaggingChanged(Event):
    """What the bagging-area check says changed (posted on the main loop)."""

    status: BaggingStatus


@dataclass
class _Sale:
    """What one sale has bagged and still expects."""

    accepted: int
    pending: list[BagItem] = field(default_factory=list)
    waiting_since: float | None = None  # when the oldest pending item was scanned
    odd_since: float | None = None  # when the weight stopped fitting
    alert: BaggingState | None = None
    skipping: bool = False
    scanned: bool = False  # an item was scanned in this sale: from now on, changes count


class BaggingCheck:
    """The bagging area of one kiosk: fed weights and cart changes, says what it sees."""

    def __init__(
        self,
        mode: BaggingMode,
        tolerance: Tolerance,
        *,
        prompt_after: float = PROMPT_AFTER_SECONDS,
        help_after: float = HELP_AFTER_SECONDS,
        alert_after: float = ALERT_AFTER_SECONDS,
    ) -> None:
        self.mode = mode
        self._tolerance = tolerance
        self._prompt_after = prompt_after
        self._help_after = help_after
        self._alert_after = alert_after
        self._weight: int | None = None  # None until the scale has answered once
        self._sale = _Sale(accepted=0)
        self._now = 0.0
        self._suspended = False  # the scale is out of order

    @property
    def status(self) -> BaggingStatus:
        """What the check says as of the last call."""
        sale = self._sale
        weight = self._weight if self._weight is not None else sale.accepted
        return BaggingStatus(
            self.mode,
            self._state(),
            weight,
            sale.accepted,
            tuple(sale.pending),
            sale.skipping,
        )

    # --- fed by the scale and the cart ---

    def weighed(self, grams: int, now: float) -> BaggingStatus:
        """A stable weight on the bagging scale."""
        first = self._weight is None
        self._weight = grams
        if first or self._suspended:
            self._sale.accepted = grams  # what lay there before the kiosk looked is no one's
        return self._evaluate(now)

    def added(self, item: BagItem, now: float) -> BaggingStatus:
        """An item was scanned: it should go into the bag."""
        self._expect(item, now)
        return self._evaluate(now)

    def voided(self, item: BagItem, now: float) -> BaggingStatus:
        """An item was taken off the cart: out of the bag, or never bagged at all."""
        sale = self._sale
        waiting = next(
            (p for p in reversed(sale.pending) if p.sku == item.sku and not p.removed), None
        )
        if waiting is not None:
            sale.pending.remove(waiting)  # it never reached the bag: nothing to take out
            if not sale.pending:
                sale.waiting_since = None
        else:
            self._expect(BagItem(item.sku, item.name, item.grams, item.tolerance, True), now)
        return self._evaluate(now)

    def tick(self, now: float) -> BaggingStatus:
        """Time passed: a late item prompts, then calls for help; an odd weight alerts."""
        return self._evaluate(now)

    def new_sale(self, now: float) -> BaggingStatus:
        """A sale ended (paid, cancelled, parked): the bags go, the next customer starts."""
        self._sale = _Sale(accepted=self._weight if self._weight is not None else 0)
        return self._evaluate(now)

    def suspend(self, now: float) -> BaggingStatus:
        """The scale is out of order: expect nothing, alert nothing, until `resume`."""
        self._suspended = True
        self._weight = None
        self._sale = _Sale(accepted=0, skipping=self._sale.skipping)
        return self._evaluate(now)

    def resume(self, now: float) -> BaggingStatus:
        """The scale is back: the next weight it gives is the bag as it is."""
        self._suspended = False
        return self._evaluate(now)

    # --- staff at the kiosk ---

    def staff(self, action: StaffAction, now: float) -> BaggingStatus:
        """Staff have looked: the bag as it is now is right, and the items waiting are not due.

        "skip_sale" also stops expecting anything until the sale ends.
        """
        sale = self._sale
        sale.accepted = self._weight if self._weight is not None else sale.accepted
        sale.pending.clear()
        sale.waiting_since = sale.odd_since = None
        sale.alert = None
        if action == "skip_sale":
            sale.skipping = True
        return self._evaluate(now)

    # --- the rules ---

    def _expect(self, item: BagItem, now: float) -> None:
        sale = self._sale
        if self.mode == "off" or sale.skipping or self._suspended or self._weight is None:
            return  # nothing to judge the bag against: the check waits for the scale
        if not sale.pending:
            sale.waiting_since = now
        sale.pending.append(item)
        sale.scanned = True

    def _evaluate(self, now: float) -> BaggingStatus:
        self._now = now
        sale = self._sale
        if self.mode == "off" or self._suspended or self._weight is None:
            return self.status
        if sale.skipping or not sale.scanned:
            # Staff said so, or the sale has not begun: whatever is bagged is fine.
            sale.accepted = self._weight
            return self.status
        change = self._weight - sale.accepted
        explained = self._explained(change)
        if explained:
            del sale.pending[:explained]
            sale.accepted = self._weight
            sale.waiting_since = now if sale.pending else None
            sale.odd_since = None
            if sale.alert != "not_bagged" or not sale.pending:
                sale.alert = None
        elif abs(change) <= self._noise:
            sale.odd_since = None
            if sale.alert in ("unexpected_item", "item_removed"):
                sale.alert = None  # put back, or taken out again: the customer fixed it
        elif sale.odd_since is None:
            sale.odd_since = now
        if sale.odd_since is not None and now - sale.odd_since >= self._alert_after:
            sale.alert = "unexpected_item" if change > 0 else "item_removed"
        elif (
            sale.alert is None
            and sale.waiting_since is not None
            and now - sale.waiting_since >= self._help_after
        ):
            sale.alert = "not_bagged"
        return self.status

    @property
    def _noise(self) -> int:
        """A smaller change than this is no change at all."""
        return self._tolerance.grams

    def _explained(self, change: int) -> int:
        """How many of the oldest pending items `change` accounts for (0: none)."""
        pending = self._sale.pending
        for count in range(len(pending), 0, -1):
            if self._fits(pending[:count], change):
                return count
        return 0

    def _fits(self, items: list[BagItem], change: int) -> bool:
        known = sum(i.signed_grams for i in items if i.grams is not None)
        unknown = [i for i in items if i.grams is None]
        allowed = sum(self._allowed(i) for i in items if i.grams is not None)
        rest = change - known
        if not unknown:
            return abs(rest) <= allowed
        # An item with no expected weight fits any settled change its own way.
        if all(i.removed for i in unknown):
            return rest < -self._noise
        if not any(i.removed for i in unknown):
            return rest > self._noise
        return abs(rest) > self._noise

    def _allowed(self, item: BagItem) -> int:
        if item.tolerance is not None:
            return item.tolerance
        return self._tolerance.around(item.grams or 0)

    def _state(self) -> BaggingState:
        sale = self._sale
        if self.mode == "off":
            return "settled"
        if self._suspended:
            return "suspended"
        if sale.alert is not None:
            return sale.alert
        if not sale.pending:
            return "settled"
        late = sale.waiting_since is not None and self._now - sale.waiting_since
        return "prompting" if late and late >= self._prompt_after else "waiting"
