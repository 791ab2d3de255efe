"""qemu's guestfwd `cmd:` end: one guest connection relayed to a TCP port on the host.

qemu starts this once per connection the guest opens, with the connection on stdin and
stdout: `python -m tests.image.relay 127.0.0.1 PORT`. Loopback only, by construction.
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def _pump_in(sock: socket.socket) -> None:
    """Guest to host."""
    while chunk := os.read(0, 65536):
        sock.sendall(chunk)
    sock.shutdown(socket.SHUT_WR)


def main(host: str, port: int) -> None:
    """Relay until either side closes."""
    if host not in {"127.0.0.1", "::1"}:
        raise SystemExit("relay: loopback only")
    with socket.create_connection((host, port)) as sock:
        threading.Thread(target=_pump_in, args=(sock,), daemon=True).start()
        while chunk := sock.recv(65536):
            os.write(1, chunk)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
