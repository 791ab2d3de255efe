"""Sending one signed webhook attempt over HTTP (httpx).

The request goes to the endpoint's URL and nowhere else: redirects are not followed
(a 3xx is a failed attempt), proxies from the environment are ignored, and the answer's
body is never read, so a receiver cannot make the hub fetch or buffer anything.
"""

from __future__ import annotations

import time
from typing import Protocol

import httpx

from appliance import __version__
from hub.webhooks.deliveries import Outcome

TIMEOUT = 10.0  # seconds for the whole attempt to connect and answer
USER_AGENT = f"appliance-hub/{__version__} (webhooks)"


class Transport(Protocol):
    """Posts one webhook attempt; thread-safe; never raises for what the network does."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """POST `body` to `url`; the status, or why there was none."""
        ...

    def close(self) -> None:
        """Release connections; safe twice."""
        ...


class HttpxTransport:
    """Transport over one shared httpx.Client (connections pooled up to `connections`)."""

    def __init__(self, *, timeout: float = TIMEOUT, connections: int = 8) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # an HTTP(S)_PROXY setting must not reroute the hub's sends
            limits=httpx.Limits(max_connections=connections),
            headers={"user-agent": USER_AGENT},
        )
        self._timeout = timeout

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """POST, then close without reading the answer's body."""
        started = time.monotonic()
        try:
            with self._client.stream(
                "POST", url, content=body, headers={"content-type": "application/json", **headers}
            ) as response:
                status = response.status_code
        except httpx.TimeoutException:
            return Outcome(None, f"no answer within {self._timeout:g} s", _since(started))
        except httpx.ConnectError as err:
            return Outcome(None, f"cannot connect: {err}", _since(started))
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            return Outcome(None, f"{type(err).__name__}: {err}", _since(started))
        error = None if 200 <= status < 300 else _why(status)
        return Outcome(status, error, _since(started))

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


def _why(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed; configure the final URL"
    return f"HTTP {status}"


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
