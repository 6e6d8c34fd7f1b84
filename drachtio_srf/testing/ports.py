"""Loopback addresses and free port numbers for test servers and far ends."""
from __future__ import annotations

import socket
import threading
from collections import deque

LOOPBACK = "127.0.0.1"
"""The IPv4 loopback address all test servers and far ends use."""

_handed: deque[int] = deque(maxlen=512)
"""Ports this process handed out lately: never handed out twice in a row of 512."""
_handed_lock = threading.Lock()
"""Guards :data:`_handed` (fixtures may pick ports from several threads)."""


def free_port(host: str = LOOPBACK) -> int:
    """A port number free on ``host`` for both UDP and TCP right now.

    SIP listens on both transports with one number, so a port is only handed out when both
    binds succeed. Another process may still take it before it is used; callers that start a
    process on it detect that (see :func:`socket_bound`) instead of assuming success.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
        with _handed_lock:
            # the kernel may offer a port again while the first taker has not bound it yet
            # (e.g. an app port chosen before the server that will dial it starts on two others)
            if port in _handed:
                continue
            _handed.append(port)
        return port
    raise RuntimeError(f"no free port found on {host}")
