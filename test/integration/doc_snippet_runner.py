"""Run one Python snippet of the docs against embedded servers (used by test_doc_snippets.py).

``python doc_snippet_runner.py SNIPPET_FILE``.  Snippets are written for a drachtio server at
127.0.0.1:9022 (secret ``cymru``) and, when they call someone, a phone at 127.0.0.1:5090.  This
runner starts an embedded server for the app and one for the phone (whose app answers every
INVITE), puts their ports in place of 9022 and 5090, and runs the snippet.  Then, if the snippet
left an Srf with request handlers, the phone calls it and hangs up once answered, so that the
handlers run too.  Every Srf the snippet made is disconnected at the end.

Exit status 0 and ``SNIPPET OK`` on stdout when the snippet ran, the call (if any) got a final
response, and the library logged nothing at ERROR (that is where exceptions of user code go).
"""
from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import Any

from drachtio_srf import SipError, Srf
from drachtio_srf.server import EmbeddedServer

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=phone\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
WAIT = 20.0


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _srfs(namespace: dict[str, Any]) -> list[Srf]:
    return [v for v in namespace.values() if isinstance(v, Srf)]


def _wait_connected(srf: Srf) -> bool:
    """True once ``srf`` is connected (a snippet may leave its connect in flight, as JS does)."""
    if srf._mode != "client":
        return False
    pause = threading.Event()
    deadline = time.monotonic() + WAIT
    while not srf.connected and time.monotonic() < deadline:
        pause.wait(0.02)
    return srf.connected


def main(path: str) -> int:
    errors = _Errors()
    logging.getLogger("drachtio_srf").addHandler(errors)
    logging.basicConfig(level=logging.WARNING)

    app_server = EmbeddedServer(admin_port=0, sip_port=0, secret="cymru").start()
    phone_server = EmbeddedServer(admin_port=0, sip_port=0, secret="cymru").start()
    phone = Srf()
    phone.connect(host="127.0.0.1", port=phone_server.admin_port, secret="cymru").result(WAIT)

    def answer(req: Any, res: Any) -> None:
        if req.method == "INVITE":
            phone.create_uas(req, res, local_sdp=SDP)
        else:
            res.send(200)

    for verb in ("invite", "options", "info", "message"):
        phone.use(verb, answer)

    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"\b9022\b", str(app_server.admin_port), text)
    text = re.sub(r"\b5090\b", str(phone_server.sip_port), text)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    status = 0
    try:
        exec(compile(text, path, "exec"), namespace)     # noqa: S102 - the snippet under test
        for srf in _srfs(namespace):
            if srf._stack and _wait_connected(srf):
                try:
                    dialog = phone.create_uac(f"sip:app@127.0.0.1:{app_server.sip_port}",
                                              local_sdp=SDP).result(WAIT)
                except SipError as err:        # the snippet's app answered with a failure: fine
                    print(f"call answered with {err.status}")
                else:
                    dialog.destroy().result(WAIT)
                break
    finally:
        for srf in _srfs(namespace):
            srf.disconnect()
        phone.disconnect()
        phone_server.stop()
        app_server.stop()
    if errors.records:
        for record in errors.records:
            print("ERROR logged:", record.getMessage(), file=sys.stderr)
        status = 1
    if status == 0:
        print("SNIPPET OK")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
