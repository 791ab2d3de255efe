"""Group commit: the sales batches a hub worker finds queued, stored in one transaction.

Under load the worker's inbox holds batches of several devices at once. Storing each in a
transaction of its own pays a commit (an fsync on SQLite, a round trip and a WAL flush on
PostgreSQL) per batch; storing the queued ones together pays it once. Nothing waits to
fill a group: it is whatever was already queued, so a quiet hub still commits and
acknowledges each batch on its own at once.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")

MAX_BATCHES = 64  # a group's transaction holds its devices' progress rows locked
MAX_BYTES = 2 * 1024 * 1024  # and a commit holds this much work at most


@dataclass(frozen=True, slots=True)
class Gathered(Generic[Item]):
    """Sales batches to store together, and the item that ended the group (handled next)."""

    group: list[Item]
    pending: Item | None
    stop: bool = False  # the stop sentinel ended the group


def gather(
    first: Item,
    inbox: queue.Queue[Item | None],
    is_sales: Callable[[Item], bool],
    size: Callable[[Item], int],
    *,
    max_batches: int = MAX_BATCHES,
    max_bytes: int = MAX_BYTES,
) -> Gathered[Item]:
    """`first` (a sales batch) and the sales batches queued right behind it, never waiting.

    The first other message ends the group and comes back as `pending`, so messages
    keep their order around it; a batch over the limits does too.
    """
    group, total = [first], size(first)
    while len(group) < max_batches:
        try:
            item = inbox.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return Gathered(group, None, stop=True)
        if not is_sales(item) or total + size(item) > max_bytes:
            return Gathered(group, item)
        group.append(item)
        total += size(item)
    return Gathered(group, None)
