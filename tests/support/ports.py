"""Free loopback ports and loopback source addresses.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a client socket can bind any
127.x.y.z address without configuration. The harness uses that to stand in for different school
devices: 127.0.0.2 is one iPad, 127.0.0.3 another, and the gateway sees them as distinct clients.

Prefer binding port 0 and reading the real port back (the origins and ``Mitmdump`` do this);
:func:`free_port` is for programs that need a number up front, and has the usual small race
between choosing the port and the program binding it.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def device_address(n: int) -> str:
    """The loopback source address of test device ``n`` (1 -> 127.0.0.2, 2 -> 127.0.0.3, …).

    Use it as httpx ``HTTPTransport(local_address=...)`` or curl ``--interface``.
    """
    if not 1 <= n <= 250:
        raise ValueError(f"device number must be 1..250, not {n}")
    return f"127.0.0.{n + 1}"
