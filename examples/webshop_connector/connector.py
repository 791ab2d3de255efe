#!/usr/bin/env python3
"""A web shop's connector to the appliance hub: stock and products in, web orders out.

It uses only the hub's published HTTP API (/api/v1) and its webhooks, with httpx and the
standard library, as any integrator's program would:

    connector.py register --hub URL --token ADMIN_TOKEN --store STORE --url RECEIVER_URL
        creates the webhook endpoint and prints its signing secret (shown this once);
    connector.py serve --hub URL --token TOKEN --store STORE --state FILE --listen HOST:PORT
                       --secret whsec_...
        syncs the store's products and stock into a JSON file, then keeps it in step from
        signed `stock.changed` and `product.changed` webhooks;
    connector.py order --hub URL --token TOKEN --store STORE SKU QTY --order-id ID
        takes a web order's items out of the store's stock at the hub (once per order id).

The file is the "web shop": {"store", "synced_at", "products": {sku: {...}}, "seen": [...]}.
Each product holds its name, description, price, picture and `stock` (null when the store
does not count it), with `stock_as_of` (the hub's time of that level) and `written_at`
(when this connector wrote it). `seen` holds the webhook-ids applied lately, so a
message the hub sends again (a retry, a replay) changes nothing.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger("webshop_connector")

API = "/api/v1"
TOLERANCE_S = 5 * 60  # a webhook-timestamp further from our clock is refused (replays)
SEEN_KEPT = 5000  # webhook-ids remembered: far more than the hub ever has in flight
MAX_BODY = 1 << 20  # bytes; the hub's events are a few KiB
PAGE = 500  # items asked for per page while syncing
SYNC_MARGIN_S = 2.0  # see Hub._hub_time
ORDER_REASON = "web_order"
EVENT_TYPES = ("stock.changed", "product.changed")
DESCRIPTION = "A web shop's connector to the appliance hub: stock and products in, orders out."
SHOWN = ("name", "names", "description", "price", "currency", "category", "sold_by")


# --- the hub's API -----------------------------------------------------------------------


class ConnectorError(Exception):
    """Something the user must fix; the message says what."""


class HubError(ConnectorError):
    """The hub refused a request; the message carries its problem details."""


class Hub:
    """The few calls of the hub's HTTP API this connector makes, with one bearer token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + API,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = self._http.request(method, path, **kwargs)
        if answer.is_error:
            raise HubError(_problem(answer))
        return answer

    def pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a cursor-paged list, following `next_cursor` to the end."""
        query = {**(params or {}), "limit": PAGE}
        while True:
            page = self._call("GET", path, params=query).json()
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    def products(self, store: str) -> Iterator[dict[str, Any]]:
        """The store's products as full records."""
        return self.pages(f"/stores/{_seg(store)}/products")

    def stock(self, store: str) -> tuple[list[dict[str, Any]], str]:
        """The store's stock-tracked products with their levels, and a hub time before the read.

        Events stamped before that time are in the levels read; see `_hub_time`.
        """
        before = self._hub_time(f"/stores/{_seg(store)}/stock")
        return list(self.pages(f"/stores/{_seg(store)}/stock")), before

    def _hub_time(self, path: str) -> str:
        # The hub's own clock, from the Date header of a small call made before the read,
        # so the levels and the events' timestamps are compared by the hub's clock. Date
        # has whole seconds; SYNC_MARGIN_S more covers a change whose event was stamped
        # just before the read but committed just after it (its event must still count).
        answer = self._call("GET", path, params={"limit": 1})
        date = parsedate_to_datetime(answer.headers["date"]).astimezone(UTC)
        return _rfc3339(date - timedelta(seconds=SYNC_MARGIN_S))

    def take_order(
        self, store: str, sku: str, quantity: int, order_id: str
    ) -> tuple[int, dict[str, Any]]:
        """Record a web order as a stock movement: 201 and the movement, or 200 and the one
        recorded before with this order id (a retry counts once)."""
        body = {"delta": -quantity, "reason": ORDER_REASON, "reference": order_id}
        path = f"/stores/{_seg(store)}/stock/{_seg(sku)}/movements"
        answer = self._call("POST", path, json=body)
        return answer.status_code, answer.json()

    def register(self, store: str, url: str) -> dict[str, Any]:
        """Create a webhook endpoint for this store's stock and product changes."""
        body = {
            "url": url,
            "event_types": list(EVENT_TYPES),
            "store": store,
            "description": f"web shop connector for {store}",
        }
        result: dict[str, Any] = self._call("POST", "/webhooks/endpoints", json=body).json()
        return result


def _seg(value: str) -> str:
    return quote(value, safe="")


def _problem(answer: httpx.Response) -> str:
    """An RFC 9457 problem as one line: status, detail and each wrong field."""
    try:
        body = answer.json()
    except ValueError:
        return f"{answer.status_code}: {answer.text[:200]}"
    text = f"{answer.status_code} {body.get('title', '')}: {body.get('detail', '')}"
    for error in body.get("errors", []):
        text += f"; {error.get('field')}: {error.get('message')}"
    return text


# --- Standard Webhooks signatures --------------------------------------------------------


class SignatureError(ValueError):
    """A message that is unsigned, signed with another secret, or signed too long ago."""


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """The message's webhook-id once its signature and timestamp check out; else SignatureError.

    The signature is `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), keyed
    with the base64 after `whsec_`; several may be sent, space-separated (key rotation).
    `body` must be the bytes as received: parsing and re-encoding JSON would change them.
    """
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    sent = headers.get("webhook-signature", "")
    if not (msg_id and stamp and sent):
        raise SignatureError("webhook-id, webhook-timestamp or webhook-signature missing")
    try:
        timestamp = int(stamp)
    except ValueError as err:
        raise SignatureError(f"webhook-timestamp {stamp!r} is not unix seconds") from err
    if abs(now - timestamp) > TOLERANCE_S:
        raise SignatureError(f"webhook-timestamp {timestamp} is over {TOLERANCE_S} s from now")
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as err:
        raise SignatureError("the configured secret is not whsec_<base64>") from err
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for candidate in sent.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return msg_id
    raise SignatureError("no webhook-signature matches this body and secret")


# --- the web shop's file -----------------------------------------------------------------


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc_now() -> str:
    return _rfc3339(datetime.now(UTC))


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ShopFile:
    """The web shop's stock and products as one JSON file, replaced atomically on each change.

    Thread-safe: `apply` and `sync` hold one lock while they change and write the file.
    """

    def __init__(self, path: Path, store: str) -> None:
        self.path = path
        self.store = store
        self._lock = threading.Lock()
        self.data: dict[str, Any] = {"store": store, "synced_at": None, "products": {}, "seen": []}
        if path.exists():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if loaded.get("store") != store:
                raise ConnectorError(f"{path} is the shop of store {loaded.get('store')!r}")
            self.data = loaded
        self._seen = set(self.data["seen"])

    def sync(
        self, products: Iterator[dict[str, Any]], stock: list[dict[str, Any]], at: str
    ) -> None:
        """Replace the products and levels with the hub's, as read at `at` (the hub's time)."""
        levels = {item["sku"]: item["level"] for item in stock}
        written = _utc_now()
        fresh = {}
        for product in products:
            sku = product["sku"]
            fresh[sku] = _shown(product) | {
                "stock": levels.get(sku),
                "stock_as_of": at,
                "version": product["version"],
                "written_at": written,
            }
        with self._lock:
            self.data["products"] = fresh
            self.data["synced_at"] = at
            self._write()

    def apply(self, msg_id: str, event: dict[str, Any]) -> str:
        """Apply one verified webhook once; returns what it did, for the log."""
        with self._lock:
            if msg_id in self._seen:
                return "already applied"
            outcome = self._change(event)
            self._remember(msg_id)
            self._write()
            return outcome

    def _change(self, event: dict[str, Any]) -> str:
        data = event.get("data") or {}
        if data.get("store") != self.store:
            return f"for store {data.get('store')!r}, not ours"
        products: dict[str, Any] = self.data["products"]
        sku = data["sku"]
        if event["type"] == "stock.changed":
            entry = products.setdefault(sku, {"stock": None, "stock_as_of": None})
            # Deliveries can overtake each other (a retry of an older one arrives late):
            # a level the hub computed before the one we hold is stale, so it is dropped.
            held = entry.get("stock_as_of")
            if held is not None and _moment(event["timestamp"]) < _moment(held):
                return f"{sku}: level {data['level']} older than ours, ignored"
            entry.update(stock=data["level"], stock_as_of=event["timestamp"])
            entry["written_at"] = _utc_now()
            return f"{sku}: stock {data['level']} ({data.get('cause', '?')})"
        if event["type"] == "product.changed":
            held_version = products.get(sku, {}).get("version")
            if held_version is not None and data["version"] < held_version:
                return f"{sku}: version {data['version']} older than ours, ignored"
            if data["action"] == "deleted" or data.get("product") is None:
                products.pop(sku, None)
                return f"{sku}: removed from the shop"
            entry = products.setdefault(sku, {"stock": None, "stock_as_of": None})
            entry.update(_shown(data["product"]), version=data["version"])
            entry["written_at"] = _utc_now()
            return f"{sku}: product {data['action']}"
        return f"{event['type']} is not for the shop"

    def _remember(self, msg_id: str) -> None:
        seen: list[str] = self.data["seen"]
        seen.append(msg_id)
        self._seen.add(msg_id)
        for old in seen[: max(0, len(seen) - SEEN_KEPT)]:
            self._seen.discard(old)
        del seen[: max(0, len(seen) - SEEN_KEPT)]

    def _write(self) -> None:
        # Write beside the file, flush to disk, then rename over it: a reader (or a crash)
        # sees the old file or the new one, never half of one.
        text = json.dumps(self.data, indent=2, sort_keys=True, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _shown(product: Mapping[str, Any]) -> dict[str, Any]:
    """What the shop shows of a hub product: names, text, price and picture."""
    image = product.get("image")
    return {name: product.get(name) for name in SHOWN} | {
        "image_url": image.get("url") if image else None,
    }


# --- the webhook receiver ----------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """An HTTP server taking the hub's webhooks at POST /webhooks into the shop file."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], shop: ShopFile, secret: str) -> None:
        super().__init__(address, _Handler)
        self.shop = shop
        self.secret = secret


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"  # keep-alive: the hub reuses its connection

    def do_POST(self) -> None:
        """Verify, de-duplicate, apply; 2xx only once the file holds the change."""
        length = int(self.headers.get("content-length") or 0)
        if self.path.split("?")[0] != "/webhooks" or length > MAX_BODY:
            self.close_connection = True  # its body is left unread: the stream ends here
            too_big = length > MAX_BODY
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if too_big else HTTPStatus.NOT_FOUND)
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            msg_id = verify(self.server.secret, headers, body, time.time())
        except SignatureError as err:
            log.warning("refused a webhook: %s", err)
            self._answer(HTTPStatus.UNAUTHORIZED)
            return
        try:
            event = json.loads(body)
            outcome = self.server.shop.apply(msg_id, event)
        except (ValueError, KeyError, TypeError) as err:
            # Signed by the hub yet not understood: say so, so it stays visible there.
            log.error("webhook %s not understood: %r", msg_id, err)
            self._answer(HTTPStatus.UNPROCESSABLE_ENTITY)
            return
        log.info("webhook %s %s: %s", msg_id, event.get("type"), outcome)
        self._answer(HTTPStatus.NO_CONTENT)

    def _answer(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


# --- commands ----------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """Sync the shop file from the hub, then keep it in step from webhooks until stopped."""
    host, _, port = args.listen.rpartition(":")
    shop = ShopFile(Path(args.state), args.store)
    # Listen before syncing: webhooks sent meanwhile wait in the socket's backlog and are
    # applied after the sync, where their timestamps decide whether they are newer.
    receiver = Receiver((host or "127.0.0.1", int(port)), shop, args.secret)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        hub = Hub(args.hub, args.token)
        try:
            stock, read_at = hub.stock(args.store)
            shop.sync(hub.products(args.store), stock, read_at)
        finally:
            hub.close()
        log.info("synced %d products of %s", len(shop.data["products"]), args.store)
        log.info("receiving webhooks at http://%s:%d/webhooks", *receiver.server_address[:2])
        receiver.serve_forever(poll_interval=0.2)
    finally:
        receiver.server_close()
    return 0


def register(args: argparse.Namespace) -> int:
    """Create the webhook endpoint and print its secret for `serve --secret`."""
    hub = Hub(args.hub, args.token)
    try:
        endpoint = hub.register(args.store, args.url)
    finally:
        hub.close()
    print(f"endpoint {endpoint['id']} for {', '.join(endpoint['event_types'])}", file=sys.stderr)
    print(endpoint["secret"])
    return 0


def order(args: argparse.Namespace) -> int:
    """Take a web order's quantity out of the store's stock, once per order id."""
    if args.quantity <= 0:
        raise ConnectorError("QTY must be a positive number of items (or grams)")
    hub = Hub(args.hub, args.token)
    try:
        status, movement = hub.take_order(args.store, args.sku, args.quantity, args.order_id)
    finally:
        hub.close()
    print(json.dumps({"status": status, **movement}, sort_keys=True))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str, token_help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--hub", required=True, help="the hub's base URL, http://host:port")
        sub.add_argument(
            "--token",
            default=os.environ.get("HUB_TOKEN"),
            required="HUB_TOKEN" not in os.environ,
            help=f"{token_help} (default: $HUB_TOKEN)",
        )
        sub.add_argument("--store", required=True, help="the store the shop sells from")
        return sub

    sub = command("serve", "Keep the shop file in step with the hub.", "a read token")
    sub.add_argument("--state", required=True, help="the shop's JSON file")
    sub.add_argument("--listen", default="127.0.0.1:8099", help="HOST:PORT for the webhooks")
    sub.add_argument(
        "--secret",
        default=os.environ.get("WEBHOOK_SECRET"),
        required="WEBHOOK_SECRET" not in os.environ,
        help="the endpoint's whsec_... secret from `register` (default: $WEBHOOK_SECRET)",
    )
    sub.set_defaults(run=serve)

    sub = command("register", "Create the webhook endpoint; prints its secret.", "an admin token")
    sub.add_argument("--url", required=True, help="where the hub POSTs: http://host:port/webhooks")
    sub.set_defaults(run=register)

    sub = command("order", "Take a web order out of the store's stock.", "a write token")
    sub.add_argument("sku", metavar="SKU")
    sub.add_argument("quantity", metavar="QTY", type=int)
    sub.add_argument("--order-id", required=True, help="the web order's id: a retry counts once")
    sub.set_defaults(run=order)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; 1 with the hub's reason when the hub refuses."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.run(args))
    except ConnectorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except httpx.HTTPError as err:
        print(f"error: the hub at {args.hub} did not answer: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
