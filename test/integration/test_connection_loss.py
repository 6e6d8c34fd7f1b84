"""#9 point 5: dialogs up when the control connection is lost are released.

drachtio-server routes a dialog's requests only to the connection that set it up (and a restarted
server has no dialogs at all), so the app's Dialogs on a lost connection can never hear from the
far end again: each emits ``destroy(None, 'connection lost')`` and leaves the registry.
"""
from __future__ import annotations

import queue
import threading

from helpers import LOOPBACK, SECRET, ServerProcess
from itest_support import SDP, WAIT, get, no_leaked_threads

from drachtio_srf import Srf


def test_dialog_is_destroyed_when_the_server_restarts(far_end):
    first = ServerProcess()
    second: ServerProcess | None = None
    destroyed: queue.Queue = queue.Queue()
    reconnected = threading.Event()
    try:
        with no_leaked_threads():
            srf = Srf()
            srf.on("error", lambda *_a: None)     # the loss is reported as an error too
            srf.connect(host=LOOPBACK, port=first.admin_port, secret=SECRET).result(WAIT)
            srf.on("connect", lambda *_a: reconnected.set())
            try:
                sipp = far_end("uas-answer.xml")
                dialog = srf.create_uac(f"sip:farend@{LOOPBACK}:{sipp.port}", local_sdp=SDP).result(WAIT)
                dialog.on("destroy", lambda *args: destroyed.put((threading.current_thread().name, args)))
                assert srf.find_dialog_by_id(dialog.id) is dialog

                first.stop()
                thread, args = get(destroyed, "destroy after the connection was lost")
                assert args == (None, "connection lost")
                assert thread.startswith("drachtio-worker")      # user code on a worker, as always
                assert srf.find_dialog_by_id(dialog.id) is None
                assert dialog.connected is False

                # the same server comes back: the app reconnects, the old dialog stays gone
                second = ServerProcess(admin_port=first.admin_port, sip_port=first.sip_port)
                assert reconnected.wait(15)
                assert srf.find_dialog_by_id(dialog.id) is None
                assert destroyed.empty()
            finally:
                srf.disconnect()
    finally:
        first.stop()
        if second is not None:
            second.stop()

