"""Test your drachtio app: an embedded server on free ports, sipp far ends, a Python SIP peer.

The pytest plugin (:mod:`drachtio_srf.testing.plugin`, registered through the ``pytest11``
entry point) turns these into fixtures; the classes work without pytest too.
"""
from __future__ import annotations

from .ports import LOOPBACK, free_port
from .procnet import socket_bound

__all__ = ["LOOPBACK", "free_port", "socket_bound"]
