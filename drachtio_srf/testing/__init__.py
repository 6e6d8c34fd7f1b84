"""Test your drachtio app: an embedded server on free ports, sipp far ends, a Python SIP peer.

The pytest plugin (:mod:`drachtio_srf.testing.plugin`, registered through the ``pytest11``
entry point) turns these into fixtures; the classes work without pytest too.
"""
from __future__ import annotations

from .peer import DEFAULT_SDP, PeerDialog, PeerTimeout, Reply, SipPeer
from .ports import LOOPBACK, free_port
from .procnet import socket_bound
from .server_process import DEFAULT_SECRET, ServerProcess
from .sipp import Sipp, SippError

__all__ = ["DEFAULT_SDP", "DEFAULT_SECRET", "LOOPBACK", "PeerDialog", "PeerTimeout", "Reply",
           "ServerProcess", "SipPeer", "Sipp", "SippError", "free_port", "socket_bound"]
