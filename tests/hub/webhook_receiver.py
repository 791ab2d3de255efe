"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that keeps what it gets.

It answers every POST with `status` (settable: 500 plays a broken receiver), can be
stopped (the port then refuses connections) and started again on the same port. The
clock tests step is a `SteppedClock`: real time plus an offset the test moves forward;
`settle` waits until the delivery service has attempted everything due by that clock.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from peewee import Database, fn

from hub.webhooks.models import PENDING, WebhookDelivery, WebhookEndpoint
from hub.webhooks.signing import new_secret

TIMEOUT = 15.0  # seconds; a bound on waiting, never asserted


@dataclass(frozen=True, slots=True)
class Received:
    """One POST as it arrived, and what the receiver answered."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int
    at: float  # time.monotonic() on arrival
    now: float  # unix seconds on arrival by the receiver's clock (the hub's, in tests)

    @property
    def webhook_id(self) -> str:
        """The message's webhook-id header."""
        return self.headers.get("webhook-id", "")

    @property
    def message(self) -> dict[str, Any]:
        """The JSON body."""
        return json.loads(self.body)  # type: ignore[no-any-return]


class Receiver:
    """An HTTP receiver on a loopback port; thread-safe."""

    def __init__(
        self,
        status: int = 200,
        headers: dict[str, str] | None = None,
        *,
        clock: SteppedClock | None = None,
    ) -> None:
        self.status = status
        self.clock = clock
        self.reply_headers = headers or {}
        self.port = 0
        self._received: list[Received] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        """Listen (on the port of the last run, if there was one)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                status = receiver.status
                item = Received(
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    status=status,
                    at=time.monotonic(),
                    now=receiver.clock.now().timestamp() if receiver.clock else time.time(),
                )
                self.send_response(status)
                for name, value in receiver.reply_headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver._changed:
                    receiver._received.append(item)
                    receiver._changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until `start` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def received(self) -> list[Received]:
        """Everything POSTed so far, in order."""
        with self._changed:
            return list(self._received)

    def accepted(self) -> list[Received]:
        """What was answered with a 2xx: what the receiver really has."""
        return [item for item in self.received() if 200 <= item.status < 300]

    def wait_for(
        self, condition: Callable[[list[Received]], bool], timeout: float = TIMEOUT
    ) -> None:
        """Wait until `condition(received())` holds; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(list(self._received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(r.webhook_id, r.status) for r in self._received]
                    raise AssertionError(f"the receiver did not get what was expected: {got}")
                self._changed.wait(left)


class SteppedClock:
    """Real time plus an offset a test moves forward: backoffs pass without waiting."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Real UTC time plus the offset."""
        with self._lock:
            return datetime.now(UTC) + self._offset

    def monotonic(self) -> float:
        """Real monotonic time plus the offset."""
        with self._lock:
            return time.monotonic() + self._offset.total_seconds()

    def step(self, seconds: float) -> None:
        """Move the clock forward."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def step_to(self, moment: datetime) -> None:
        """Move the clock forward to `moment` (naive counts as UTC), if it is ahead."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        with self._lock:
            ahead = moment - (datetime.now(UTC) + self._offset)
            if ahead > timedelta():
                self._offset += ahead


def add_endpoint(
    db: Database, url: str, types: list[str], *, store: str | None = None
) -> tuple[str, str]:
    """An endpoint as the API creates it, written directly; returns (id, secret)."""
    endpoint_id = f"ep_{secrets.token_hex(8)}"
    secret = new_secret()
    WebhookEndpoint.insert(
        id=endpoint_id,
        url=url,
        secret=secret,
        event_types=json.dumps(types),
        store=store,
        created_at=datetime.now(UTC).replace(tzinfo=None),
    ).execute(db)
    return endpoint_id, secret


def busy(db: Database, clock: SteppedClock) -> int:
    """Pending deliveries due by the clock or held by a sender right now."""
    now = clock.now().astimezone(UTC).replace(tzinfo=None)
    query = WebhookDelivery.select().where(
        (WebhookDelivery.state == PENDING)
        & ((WebhookDelivery.next_at <= now) | WebhookDelivery.lease_owner.is_null(False))
    )
    return int(query.count(db))


def settle(db: Database, clock: SteppedClock, timeout: float = TIMEOUT) -> None:
    """Wait until every delivery due by the clock has been attempted and recorded."""
    deadline = time.monotonic() + timeout
    while busy(db, clock):
        if time.monotonic() > deadline:
            raise AssertionError("webhook deliveries due were not attempted in time")
        time.sleep(0.02)


def step_to_next_due(db: Database, clock: SteppedClock) -> bool:
    """Move the clock to the next pending attempt's time; False when none is pending."""
    query = WebhookDelivery.select(fn.MIN(WebhookDelivery.next_at)).where(
        WebhookDelivery.state == PENDING
    )
    due = query.scalar(db)
    if due is None:
        return False
    clock.step_to(due if isinstance(due, datetime) else datetime.fromisoformat(due))
    return True


def deliveries_of(db: Database) -> list[dict[str, Any]]:
    """Every delivery row, by id."""
    return list(WebhookDelivery.select().order_by(WebhookDelivery.id).dicts().execute(db))
