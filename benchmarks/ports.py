"""Free loopback ports for servers the benchmarks and the tests start.

Picked below Linux's ephemeral range (32768-60999 by default): a port the
kernel hands out for 0 can be taken meanwhile as the source port of any
outgoing connection (a Redis client's) before the server that asked binds it.
"""

from __future__ import annotations

import random
import socket

PORTS = range(20000, 32000)


def free_port() -> int:
    """A port nothing listens on now, outside the range outgoing connections use."""
    for _ in range(200):
        port = random.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")
