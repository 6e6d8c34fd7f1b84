"""Loopback addresses and free port numbers for test servers and far ends."""
from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"
"""The IPv4 loopback address all test servers and far ends use."""


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
            return port
    raise RuntimeError(f"no free port found on {host}")
