"""A threaded TCP proxy on loopback that injects network faults between a client and a broker.

`FaultProxy` listens on a free 127.0.0.1 port and forwards every connection to the target
(the test's mosquitto). Two threads per connection copy bytes, one per direction. Faults:

- `drop()`: reset every current connection (SO_LINGER 0, so the peers see a RST or an
  abrupt EOF); new connections are accepted and forwarded as before.
- `drop_after(n)`: forward exactly `n` more bytes from the client (with `upstream=False`:
  from the broker), then drop everything, so the cut lands inside whatever packet those
  bytes belong to (a sales batch, mostly).
- `stall(seconds)`: hold every byte in both directions (EOFs too) for a while, then
  deliver them in order; connections made meanwhile are held as well.
- `blackhole()` / `restore()`: a dead path. Bytes are swallowed, EOFs are not passed on,
  new connections are accepted but never reach the broker. `restore()` resets the
  swallowed connections (their streams lost bytes) and forwards new ones again.

The proxy also frames both directions as MQTT packets (fixed header only), so a test can
tell a cut inside a PUBLISH from one between packets, and count PUBLISH packets.
Only loopback traffic; `close()` resets everything and joins every thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from appliance.core.closing import Closing

log = logging.getLogger(__name__)

CHUNK = 65536
# Blocking calls wake this often to notice a drop or close (a shutdown usually wakes sooner).
POLL_S = 0.2
PUBLISH = 3  # MQTT control packet type


@dataclass(frozen=True, slots=True)
class Cut:
    """Where `drop_after` cut a stream.

    `offset` counts the direction's bytes since the proxy started; `packet_type` is the MQTT
    packet the last forwarded byte belonged to, None when the cut fell exactly between
    packets; `packet_sent` of its `packet_size` bytes got through.
    """

    connection: int
    upstream: bool
    offset: int
    packet_type: int | None
    packet_size: int
    packet_sent: int

    @property
    def inside_publish(self) -> bool:
        """The cut split a PUBLISH: the broker got a part of it and must discard it."""
        return self.packet_type == PUBLISH and 0 < self.packet_sent < self.packet_size


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """Counters since the proxy started."""

    accepted: int = 0
    active: int = 0
    drops: int = 0  # drop() calls and drop_after cuts
    bytes_up: int = 0  # forwarded client -> broker
    bytes_down: int = 0  # forwarded broker -> client
    swallowed: int = 0  # bytes a blackhole ate (both directions)
    publishes_up: int = 0  # PUBLISH packets whose header reached the broker
    publishes_down: int = 0  # PUBLISH packets whose header reached the client
    cuts: tuple[Cut, ...] = ()


class MqttFraming:
    """Follows MQTT packet boundaries in one direction of a stream (fixed headers only)."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._type: int | None = None
        self._size = 0  # header + body of the packet in progress
        self._left = 0  # body bytes of it still to come

    def feed(self, data: bytes) -> int:
        """Account for `data`; returns how many PUBLISH headers it completed."""
        publishes = 0
        i, end = 0, len(data)
        while i < end:
            if self._left:
                take = min(self._left, end - i)
                self._left -= take
                i += take
                if not self._left:
                    self._type = None
                continue
            self._header.append(data[i])
            i += 1
            self._type = self._header[0] >> 4
            parsed = _remaining_length(self._header)
            if parsed is None:
                if len(self._header) >= 5:  # not MQTT after all: stop guessing
                    self._header.clear()
                    self._type = None
                continue
            body, header_len = parsed
            self._size, self._left = header_len + body, body
            self._header.clear()
            if self._type == PUBLISH:
                publishes += 1
            if not body:
                self._type = None
        return publishes

    def position(self) -> tuple[int | None, int, int]:
        """(packet type, its size, bytes of it seen) of the packet in progress, or (None, 0, 0)."""
        if self._type is None:
            return None, 0, 0
        if self._header:  # inside the fixed header: the size is not known yet
            return self._type, 0, len(self._header)
        return self._type, self._size, self._size - self._left


def _remaining_length(header: bytearray) -> tuple[int, int] | None:
    """(body length, header length) once the variable-length integer is complete."""
    value, multiplier = 0, 1
    for index in range(1, min(len(header), 5)):
        byte = header[index]
        value += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            return value, index + 1
        multiplier *= 128
    return None


class _Connection:
    """One accepted client and (unless born in a blackhole) its broker connection."""

    def __init__(
        self, number: int, client: socket.socket, upstream: socket.socket | None, swallowed: bool
    ) -> None:
        self.number = number
        self.client = client
        self.upstream = upstream
        self.swallowed = swallowed
        self.closed = False
        self.pumps = 0  # pump threads still running (guarded by the proxy's lock)
        self.framing = {True: MqttFraming(), False: MqttFraming()}  # by direction: upstream?

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.upstream) if s is not None]

    def abort(self) -> None:
        """Make the close a reset, and wake the pumps blocked in recv on these sockets."""
        for sock in self.sockets():
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass  # already closed by its last pump

    def release(self) -> None:
        for sock in self.sockets():
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy(Closing):
    """Forwards 127.0.0.1:port to the target and injects drops, stalls and a blackhole."""

    def __init__(self, target_host: str, target_port: int) -> None:
        if not ipaddress.ip_address(socket.gethostbyname(target_host)).is_loopback:
            raise ValueError(f"the fault proxy only forwards to loopback, not {target_host}")
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(POLL_S)
        self.port = int(self._listener.getsockname()[1])
        self._cond = threading.Condition()
        # Everything below is guarded by _cond.
        self._connections: set[_Connection] = set()
        self._threads: list[threading.Thread] = []
        self._numbered = 0
        self._held_until = 0.0  # monotonic; bytes wait while now < this
        self._blackhole = False
        self._cut_left: int | None = None
        self._cut_upstream = True
        self._stats = ProxyStats()
        self._closing = False
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    # --- controls (test thread) ---

    def stats(self) -> ProxyStats:
        """A snapshot of the counters."""
        with self._cond:
            return self._stats

    def wait_for(self, predicate: Callable[[ProxyStats], object], timeout: float) -> bool:
        """Block until `predicate(stats)` holds or `timeout` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._stats), timeout)

    @property
    def stalled(self) -> bool:
        """A stall is holding bytes right now."""
        with self._cond:
            return self._held_until > time.monotonic()

    def drop(self, timeout: float = 5.0) -> int:
        """Reset every current connection; returns how many. Waits until they are gone."""
        dropped = self._abort_all()
        with self._cond:
            self._cond.wait_for(lambda: not (dropped & self._connections), timeout)
        return len(dropped)

    def drop_after(self, n_bytes: int, *, upstream: bool = True) -> None:
        """Forward `n_bytes` more client bytes (or broker bytes), then drop everything."""
        if n_bytes < 1:
            raise ValueError("drop_after needs at least one byte")
        with self._cond:
            self._cut_left = n_bytes
            self._cut_upstream = upstream

    def stall(self, seconds: float) -> None:
        """Hold every byte, both ways, for `seconds` from now; returns at once."""
        with self._cond:
            self._held_until = max(self._held_until, time.monotonic() + seconds)
            self._cond.notify_all()

    def resume(self) -> None:
        """End a stall now: held bytes flow on, in order."""
        with self._cond:
            self._held_until = 0.0
            self._cond.notify_all()

    def blackhole(self) -> None:
        """Swallow everything from now on; new connections never reach the broker."""
        with self._cond:
            self._blackhole = True
            for connection in self._connections:
                connection.swallowed = True
            self._cond.notify_all()

    def restore(self) -> None:
        """Forward again; connections that lost bytes to the blackhole are reset."""
        with self._cond:
            self._blackhole = False
            swallowed = {c for c in self._connections if c.swallowed}
            for connection in swallowed:
                connection.closed = True
            self._cond.notify_all()
        for connection in swallowed:
            connection.abort()

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, reset every connection and join every thread; safe twice."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._held_until = 0.0
        self._acceptor.join(timeout)
        self._listener.close()
        self._abort_all(count=False)
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.error("proxy threads still running: %s", alive)

    # --- internals ---

    def _abort_all(self, *, count: bool = True) -> set[_Connection]:
        with self._cond:
            connections = set(self._connections)
            for connection in connections:
                connection.closed = True
            if count:
                self._stats = _bump(self._stats, drops=1)
            self._cond.notify_all()
        for connection in connections:
            connection.abort()
        return connections

    def _accept(self) -> None:
        while True:
            with self._cond:
                if self._closing:
                    return
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._open(client)

    def _open(self, client: socket.socket) -> None:
        with self._cond:
            swallowed = self._blackhole
            self._numbered += 1
            number = self._numbered
        upstream = None
        if not swallowed:
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
            except OSError as err:
                log.info("proxy: broker unreachable (%s); closing client %d", err, number)
                client.close()
                return
        connection = _Connection(number, client, upstream, swallowed)
        for sock in connection.sockets():
            sock.settimeout(POLL_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        directions = [True] if upstream is None else [True, False]
        with self._cond:
            # A blackhole that began while we dialled the broker covers this one too.
            connection.swallowed = connection.swallowed or self._blackhole
            connection.pumps = len(directions)
            self._connections.add(connection)
            self._stats = _bump(self._stats, accepted=1, active=1)
            self._threads = [t for t in self._threads if t.is_alive()]
            for up in directions:
                thread = threading.Thread(
                    target=self._pump,
                    args=(connection, up),
                    name=f"proxy-{number}-{'up' if up else 'down'}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify_all()

    def _pump(self, connection: _Connection, up: bool) -> None:
        src = connection.client if up else connection.upstream
        dst = connection.upstream if up else connection.client
        assert src is not None
        try:
            while True:
                try:
                    data = src.recv(CHUNK)
                except TimeoutError:
                    if connection.closed:
                        return
                    continue
                except OSError:
                    return
                if not self._wait_flowing(connection):
                    return
                if connection.swallowed or dst is None:
                    if not data:
                        return  # a dead path carries no FIN: only this side stops
                    with self._cond:
                        self._stats = _bump(self._stats, swallowed=len(data))
                        self._cond.notify_all()
                    continue
                if not data:
                    self._close_quietly(connection)
                    return
                data, cut = self._account(connection, data, up)
                if data and not self._send(connection, dst, data):
                    return
                if cut:
                    self._abort_all()
                    return
        finally:
            self._pump_done(connection)

    def _wait_flowing(self, connection: _Connection) -> bool:
        """Hold while stalled; False once the connection is dropped."""
        with self._cond:
            while not connection.closed:
                left = self._held_until - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(left)
            return False

    def _account(self, connection: _Connection, data: bytes, up: bool) -> tuple[bytes, bool]:
        """Count `data`, cutting it short where drop_after says; (bytes to send, cut here)."""
        with self._cond:
            armed = self._cut_left is not None and self._cut_upstream == up
            cut = armed and len(data) >= (self._cut_left or 0)
            if cut:
                data, self._cut_left = data[: self._cut_left], None
            elif armed and self._cut_left is not None:
                self._cut_left -= len(data)
            framing = connection.framing[up]
            publishes = framing.feed(data)
            if up:
                self._stats = _bump(self._stats, bytes_up=len(data), publishes_up=publishes)
            else:
                self._stats = _bump(self._stats, bytes_down=len(data), publishes_down=publishes)
            if cut:
                kind, size, sent = framing.position()
                offset = self._stats.bytes_up if up else self._stats.bytes_down
                where = Cut(connection.number, up, offset, kind, size, sent)
                self._stats = replace(self._stats, cuts=(*self._stats.cuts, where))
                log.info("proxy: cutting connection %d at %s", connection.number, where)
            self._cond.notify_all()
            return data, cut

    def _send(self, connection: _Connection, dst: socket.socket, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            if connection.closed:
                return False
            try:
                sent = dst.send(view)
            except TimeoutError:
                continue
            except OSError:
                self._close_quietly(connection)
                return False
            view = view[sent:]
        return True

    def _close_quietly(self, connection: _Connection) -> None:
        """One side ended (EOF or error): end the other one too, with a plain close."""
        with self._cond:
            connection.closed = True
            self._cond.notify_all()
        for sock in connection.sockets():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _pump_done(self, connection: _Connection) -> None:
        with self._cond:
            connection.pumps -= 1
            last = connection.pumps == 0
            if last:
                self._connections.discard(connection)
                self._stats = _bump(self._stats, active=-1)
                self._cond.notify_all()
        if last:
            connection.release()


def _bump(stats: ProxyStats, **increments: int) -> ProxyStats:
    """`stats` with the named counters increased."""
    return replace(stats, **{name: getattr(stats, name) + n for name, n in increments.items()})
