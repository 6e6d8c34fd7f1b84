"""Frames from the server core to apps: ``sip`` events, echoes, and when they are written.

Frames to apps are queued on their connection and written once per batch of input (one wake-up
of the app, one system call); ``_send_sip_event`` also keeps the order of a dialog's first frames
when ``echo_gap`` is set (see ``_hold_after_echo``).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from drachtio_srf import wire
from drachtio_srf.server import frames
from drachtio_srf.server.parts import CoreParts
from drachtio_srf.server.sip_text import nbytes, text_of
from drachtio_srf.sip import SipMessage

if TYPE_CHECKING:  # pragma: no cover
    from drachtio_srf.server.control import ControlConnection
    from drachtio_srf.server.dialogs import Dialog


class AppOutputMixin(CoreParts):
    """The part of ``Core`` that writes frames to app connections."""

    def batch_begin(self) -> None:
        """Input is being handled: hold frames to apps until batch_end()."""
        self._batching += 1

    def batch_end(self) -> None:
        """End of handling a batch of input: flush the held frames once the outermost batch ends."""
        self._batching -= 1
        if not self._batching and self._dirty:
            self.flush_output()

    def queue_output(self, conn: ControlConnection) -> None:
        """``conn`` has frames to write: at the end of the batch, else at the end of this loop pass."""
        self._dirty.append(conn)
        if not self._batching and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_output)

    def flush_output(self) -> None:
        """Write what every connection has queued."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn._flush()

    def _send_sip_event(self, conn: ControlConnection, msg: SipMessage, *, source: str, protocol: str,
                        address: str, port: int, txn_id: str, dialog_id: str = "",
                        received_on: tuple[str, int] | None = None, text: str | None = None,
                        behind: Dialog | None = None) -> None:
        text = text if text is not None else text_of(msg)
        payload = frames.sip_event(frames.new_id(), source=source, nbytes=nbytes(text), protocol=protocol,
                                   address=address, port=port, time=frames.stack_time(), txn_id=txn_id,
                                   dialog_id=dialog_id, received_on=received_on, sip_text=text)
        if behind is not None:
            extra = behind.extra
            held_out = extra.get("held_out")
            if held_out is not None and held_out.held and held_out.conn is conn:
                # the response that created this dialog is still held (echo_gap): keep the order, e.g.
                # a NOTIFY sent right after the 202 to a SUBSCRIBE must reach the app after the 202
                held_out.held.append(payload)
                return
            if "echo_at" in extra and self.config.echo_gap > 0 and self._hold_after_echo(conn, behind, payload):
                return
        conn.send(payload)

    def _hold_after_echo(self, conn: ControlConnection, dlg: Dialog, payload: str) -> bool:
        """Keep ``echo_gap`` between the echo of the app's 2xx that made a UAS dialog and the first
        request in it (ACK, BYE ...): a client resolves its dialog when that echo arrives, and a BYE
        in the same TCP read would reach the dialog before the app listens to it (with sipp's
        immediate BYE the Node app lost dialogs this way). Returns True if the frame was held."""
        extra = dlg.extra
        held: list[str] | None = extra.get("held_in")
        if held:
            held.append(payload)
            return True
        assert self.loop is not None
        wait = extra["echo_at"] + self.config.echo_gap - self.loop.time()
        if wait <= 0:
            del extra["echo_at"]
            return False
        extra["held_in"] = [payload]

        def release() -> None:
            frames_out = extra.pop("held_in", None) or []
            extra.pop("echo_at", None)
            for p in frames_out:
                conn.send(p)

        self.loop.call_later(wait, release)
        return True

    def _echo_request(self, conn: ControlConnection, msg_id: str, txn_id: str, msg: SipMessage,
                      transport: str) -> None:
        text = str(msg)
        conn.send(wire.echo_request(wire.new_id(), msg_id, nbytes=nbytes(text), protocol=transport,
                                    address=self.host, port=self.port, time=wire.stack_time(),
                                    txn_id=txn_id, sip_text=text))
