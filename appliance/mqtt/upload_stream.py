"""What an Uploader drains: a stream of numbered items, and the batches it publishes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from appliance.core.clock import Clock


class UploaderOptions(TypedDict, total=False):
    """The tuning an Uploader takes beside its stream and link (see Uploader.__init__)."""

    batch_size: int
    max_in_flight_batches: int
    clock: Clock | None
    ack_timeout_s: float
    backoff_min_s: float
    backoff_max_s: float
    poll_s: float
    rng: random.Random | None


@dataclass(frozen=True, slots=True)
class Chunk:
    """One batch ready to publish: its encoded payload, item count and last number."""

    payload: bytes
    count: int
    last: int


class UploadStream(Protocol):
    """A durable outbox an Uploader drains; called on the uploader's worker thread only.

    Numbers are the stream's own (sales: outbox sequence; journal: entry number), gapless
    and increasing. `acknowledge` must be durable before it returns.
    """

    name: str  # "sales", "journal": the thread's name and the logs'
    # True when acknowledged items stay on the device, so the stream can go back to where
    # the hub says it holds, should it hold less than it once confirmed (a restored backup).
    keeps_acknowledged: bool

    def up_topic(self, device: str) -> str:
        """Where batches go."""
        ...

    def ack_topic(self, device: str) -> str:
        """Where the hub's acknowledgements come from."""
        ...

    def ack_number(self, ack: Any) -> int:
        """The number a decoded acknowledgement confirms (called on paho's thread)."""
        ...

    def acked_upto(self) -> int:
        """The highest number acknowledged before this uploader started (0: none kept)."""
        ...

    def next_chunk(self, after: int, limit: int) -> Chunk | None:
        """Up to `limit` items numbered above `after` as one batch, or None when none wait."""
        ...

    def acknowledge(self, upto: int, ack: Any) -> int:
        """The hub holds every item up to `upto`: record it; returns how many items that was.

        `ack` is the decoded acknowledgement, for what else it says about those items (the
        sales it rejected). Never called with an `upto` beyond what was published.
        """
        ...
