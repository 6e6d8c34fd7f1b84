"""A typed drachtio_srf app, checked by ``mypy --strict`` (test_typing.py): PEP 8 names, JS
aliases, option dicts, callbacks and futures.  ``reveal_type`` lines carry the type mypy must
report in a trailing ``# revealed:`` comment.  Never run: it is only type-checked."""
from __future__ import annotations

import concurrent.futures
import json
from typing import TYPE_CHECKING

from drachtio_srf import (
    B2BUAResult,
    Dialog,
    DrachtioFuture,
    ProxyResult,
    Request,
    Response,
    SipError,
    SipMessage,
    Srf,
    json_default,
    parse_uri,
    stringify_uri,
)

if not TYPE_CHECKING:
    def reveal_type(obj: object) -> None:
        """(only mypy knows reveal_type)"""

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

srf = Srf("typed-app")
reveal_type(srf.connect(host="127.0.0.1", port=9022, secret="cymru"))  # revealed: DrachtioFuture[str]
reveal_type(srf.connect({"host": "127.0.0.1", "port": 9022, "secret": "cymru"},
                        lambda err, hostport: None))  # revealed: Srf


# -- PEP 8 names, futures ---------------------------------------------------------------------------
@srf.invite()
def on_invite(req: Request, res: Response) -> None:
    reveal_type(srf.create_uas(req, res, local_sdp=SDP))  # revealed: DrachtioFuture[Dialog]
    dialog = srf.create_uas(req, res, local_sdp=SDP).result()
    reveal_type(dialog)  # revealed: Dialog
    reveal_type(dialog.modify("hold"))  # revealed: DrachtioFuture[str]
    reveal_type(dialog.info({"headers": {"X-Info": "1"}}))  # revealed: DrachtioFuture[Response]
    reveal_type(dialog.destroy())  # revealed: DrachtioFuture[Request]
    reveal_type(dialog.sip.call_id)  # revealed: str
    reveal_type(dialog.sip.callId)  # revealed: str
    reveal_type(dialog.other)  # revealed: Dialog | None
    dialog.on("destroy", lambda *args: None)
    server = req.server
    if server is not None:
        reveal_type(server.address)  # revealed: str | None


def on_register(req: Request, res: Response) -> None:
    reg = req.registration
    if reg is not None:
        reveal_type(reg.expires)  # revealed: int | None
    reveal_type(res.send(200))  # revealed: DrachtioFuture[SipMessage] | None


reveal_type(srf.register(on_register))  # revealed: def (req: Request, res: Response)


# -- JS names and option dicts, callbacks ---------------------------------------------------------------
def on_options(req: Request, res: Response) -> None:
    res.send(200, {"headers": {"Accept": "application/sdp"}})


srf.options(on_options)


def js_invite(req: Request, res: Response) -> None:
    def then(err: BaseException | None, dialog: Dialog) -> None:
        if err is None:
            dialog.on("destroy", lambda *args: None)
    reveal_type(srf.createUAS(req, res, {"localSdp": SDP}, then))  # revealed: Srf
    reveal_type(req.callId)  # revealed: str | None
    reveal_type(req.isNewInvite)  # revealed: bool
    reveal_type(res.statusCode)  # revealed: int | None
    print(req.getParsedHeader("From"))


srf.use("invite", js_invite)


def b2bua(req: Request, res: Response) -> None:
    fut = srf.create_b2bua(req, res, "sip:bob@127.0.0.1:5090", {"localSdpB": req.body})
    reveal_type(fut)  # revealed: DrachtioFuture[B2BUAResult]
    result = fut.result()
    uas, uac = result
    reveal_type(uas)  # revealed: Dialog
    reveal_type(result.uac)  # revealed: Dialog
    reveal_type(result["uas"])  # revealed: Dialog
    uas.on("destroy", lambda *args: uac.destroy())

    def then(err: BaseException | None, both: B2BUAResult) -> None:
        if err is not None:
            print(json.dumps(err, default=json_default))
    reveal_type(srf.createB2BUA(req, res, "sip:bob@127.0.0.1:5090", {}, {}, then))  # revealed: Srf


def proxy(req: Request, res: Response) -> None:
    fut = srf.proxy_request(req, ["sip:a@127.0.0.1", "sip:b@127.0.0.1"], {"forking": "simultaneous"})
    reveal_type(fut)  # revealed: DrachtioFuture[ProxyResult]
    results: ProxyResult = fut.result()
    reveal_type(results.finalStatus)  # revealed: int | None

    def done(err: BaseException | None, results: ProxyResult) -> None:
        print(results["final_status"])
    reveal_type(srf.proxyRequest(req, "sip:c@127.0.0.1", done))  # revealed: Request


def uac() -> None:
    fut: concurrent.futures.Future[Dialog] = srf.create_uac("sip:bob@127.0.0.1:5090", local_sdp=SDP)
    reveal_type(srf.createUAC("sip:bob@127.0.0.1", {"localSdp": SDP}, {"cbRequest": lambda err, req: None}))  # revealed: DrachtioFuture[Dialog]
    try:
        dialog = fut.result(timeout=5)
    except SipError as err:
        print(err.status, err.reason, json.dumps(err.to_json()))
        return
    reveal_type(dialog.request({"method": "INFO"}))  # revealed: DrachtioFuture[Response]
    reveal_type(dialog.modify(SDP, lambda err, sdp: None))  # revealed: Dialog
    reveal_type(dialog.destroy(lambda err: None))  # revealed: Dialog
    dfut: DrachtioFuture[Dialog] = srf.create_uac("sip:bob@127.0.0.1:5090", local_sdp=SDP)
    dfut.add_done_callback(lambda f: print(f.result().id))


uri = parse_uri("sip:alice@127.0.0.1:5080")
if uri is not None:
    print(stringify_uri(uri))
assert Srf.parseUri is parse_uri
print(SipMessage("OPTIONS sip:a@b SIP/2.0\r\n\r\n").get("Call-ID"))
srf.disconnect()
