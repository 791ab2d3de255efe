"""The webhook delivery service: threads in `appliance-hub web` that work off the queue.

One dispatcher thread polls for due deliveries (an indexed query every `poll` seconds,
sooner when a sender frees up), claims as many as there are idle senders, and hands them
over; `concurrency` sender threads each sign and POST one attempt at a time and record
its outcome. Several web processes may run this against one database: the claim makes
each attempt theirs alone (hub/webhooks/deliveries.py).

Threads: `start`/`stop`/`wake` from any thread; the dispatcher and the senders each use
their own database connection and close it when they end.
"""

from __future__ import annotations

import logging
import queue
import random
import threading

from peewee import Database, DatabaseError

from appliance.core.clock import Clock, SystemClock
from hub.webhooks import deliveries
from hub.webhooks.deliveries import Claimed, Outcome, Policy
from hub.webhooks.sender import HttpxTransport, Transport
from hub.webhooks.signing import sign_headers

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between looks at the queue when nothing is happening
PRUNE_EVERY = 3600.0  # seconds between forgetting deliveries older than the policy keeps
CONCURRENCY = 4  # sends in flight at once, per web process
_DB_RETRY = 2.0  # seconds to wait after a database fault before looking again


class DeliveryService:
    """Delivers pending webhooks until stopped; `start()`/`stop()` as the web app's Service."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        transport: Transport | None = None,
        policy: Policy | None = None,
        concurrency: int = CONCURRENCY,
        poll: float = POLL,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._concurrency = max(1, concurrency)
        self._transport = transport or HttpxTransport(connections=self._concurrency)
        self._policy = policy or Policy()
        self._poll = poll
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._work: queue.Queue[Claimed | None] = queue.Queue()
        self._idle = self._concurrency  # senders free; the dispatcher's and senders' count
        self._idle_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- any thread ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and the senders; return at once."""
        if self._threads:
            return
        self._stopping.clear()
        self._threads = [threading.Thread(target=self._dispatch, name="webhooks", daemon=True)]
        self._threads += [
            threading.Thread(target=self._send_loop, name=f"webhooks-send-{n}", daemon=True)
            for n in range(self._concurrency)
        ]
        for thread in self._threads:
            thread.start()
        log.info("webhook delivery started: %d senders", self._concurrency)

    def stop(self) -> None:
        """Finish the attempts in flight, give back unsent claims, end the threads."""
        if not self._threads:
            return
        self._stopping.set()
        self._wake.set()
        self._threads[0].join()  # it gives back what no sender has taken yet
        for _ in self._threads[1:]:
            self._work.put(None)
        for thread in self._threads[1:]:
            thread.join()
        self._threads = []
        self._transport.close()
        log.info("webhook delivery stopped")

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll (a replay, a test step)."""
        self._wake.set()

    # --- the dispatcher thread ------------------------------------------------------------

    def _dispatch(self) -> None:
        faulted = False
        pruned_at: float | None = None
        try:
            while not self._stopping.is_set():
                moment = self._clock.monotonic()
                if not faulted and (pruned_at is None or moment - pruned_at >= PRUNE_EVERY):
                    pruned_at = moment
                    self._prune()
                with self._idle_lock:
                    idle = self._idle
                try:
                    claimed = deliveries.claim(self._db, self._clock.now(), idle, self._policy)
                except DatabaseError as err:
                    if not faulted:  # once per outage, not every poll
                        log.warning("webhook delivery cannot read the queue: %s", err)
                    faulted = True
                    self._db.close()  # a fresh connection next time
                    self._stopping.wait(_DB_RETRY)
                    continue
                if faulted:
                    log.info("webhook delivery reads the queue again")
                    faulted = False
                with self._idle_lock:
                    self._idle -= len(claimed)
                for item in claimed:
                    self._work.put(item)
                if claimed and len(claimed) == idle:
                    continue  # every sender busy: a finished send wakes us
                self._wake.wait(self._poll)
                self._wake.clear()
            self._give_back()
        finally:
            self._db.close()

    def _prune(self) -> None:
        try:
            gone = deliveries.prune(self._db, self._clock.now() - self._policy.keep)
        except DatabaseError as err:  # the queue read right after meets it too, and says so
            log.debug("webhook deliveries not pruned: %s", err)
            return
        if gone:
            log.info("forgot %d webhook deliveries finished over %s ago", gone, self._policy.keep)

    def _give_back(self) -> None:
        unsent = []
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                unsent.append(item)
        if unsent:
            try:
                deliveries.release(self._db, unsent, self._clock.now())
            except DatabaseError as err:  # their leases run out instead
                log.warning("could not give back %d webhook claims: %s", len(unsent), err)

    # --- the sender threads ---------------------------------------------------------------

    def _send_loop(self) -> None:
        try:
            while (item := self._work.get()) is not None:
                try:
                    self._attempt(item)
                finally:
                    with self._idle_lock:
                        self._idle += 1
                    self._wake.set()
        finally:
            self._db.close()

    def _attempt(self, item: Claimed) -> None:
        body = item.body.encode()
        timestamp = int(self._clock.now().timestamp())
        outcome = self._post(item, body, sign_headers(item.secret, item.event, timestamp, body))
        with self._rng_lock:
            rng = random.Random(self._rng.random())  # the shared one is not thread-safe
        try:
            state = deliveries.finish(
                self._db, item, outcome, self._clock.now(), policy=self._policy, rng=rng
            )
        except DatabaseError as err:
            # The attempt is not recorded; the lease runs out and it is sent again, so a
            # receiver may see this webhook-id twice: that is what the id is for.
            log.warning("webhook %s: the outcome could not be recorded: %s", item.event, err)
            self._db.close()
            return
        if outcome.delivered:
            log.debug("webhook %s delivered to %s", item.event, item.url)
        else:
            log.info(
                "webhook %s to %s failed (attempt %d, %s): %s",
                item.event,
                item.url,
                item.attempts + 1,
                state,
                outcome.error,
            )

    def _post(self, item: Claimed, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            return self._transport.post(item.url, body, headers)
        except Exception as err:  # a transport must not raise; if it does, it is a failure
            log.exception("webhook transport failed on %s", item.url)
            return Outcome(None, f"{type(err).__name__}: {err}", 0)
