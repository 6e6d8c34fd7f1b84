"""The control connection over TLS: the server's TLS admin port, a call through it, and a
reconnect after a server restart that stays on TLS (drachtio-srf reconnects over plain TCP)."""
from __future__ import annotations

import queue
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import LOOPBACK, SECRET, ServerProcess, free_port, self_signed_cert
from itest_support import SDP, WAIT, complete, get, invoke, no_leaked_threads

from drachtio_srf import Srf
from drachtio_srf.server import EmbeddedServer


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def _tls_args(port: int, cert_files: tuple[Path, Path]) -> list[str]:
    cert, key = cert_files
    return ["--tls-port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]


@pytest.fixture(scope="module")
def server(cert_files) -> Iterator[ServerProcess]:
    """This module's server also listens for apps over TLS (``server.tls_port``)."""
    tls_port = free_port()
    proc = ServerProcess(extra=_tls_args(tls_port, cert_files))
    proc.tls_port = tls_port  # type: ignore[attr-defined]
    yield proc
    proc.stop()


@pytest.fixture
def client_tls(cert_files) -> ssl.SSLContext:
    """What an app would pass as ``tls``: a context that verifies the server's certificate."""
    return ssl.create_default_context(cafile=str(cert_files[0]))


def _answer_calls(srf: Srf, style: str, answered: queue.Queue, ended: queue.Queue) -> None:
    def on_invite(req, res):
        def then(err, dialog):
            if dialog is not None:
                dialog.on("destroy", lambda *args: ended.put(dialog))
            answered.put(err or dialog)
        complete(style, then, srf.create_uas, req, res, opts={"local_sdp": SDP})
    srf.invite(on_invite)


def _take_call(server: ServerProcess, far_end, answered: queue.Queue, ended: queue.Queue) -> None:
    sipp = far_end("uac-answer-bye.xml", server.sip_port)
    dialog = get(answered, "create_uas to complete")
    assert not isinstance(dialog, BaseException), f"create_uas failed: {dialog!r}"
    get(ended, "the destroy event after the far end's BYE")
    sipp.expect_success()


def test_call_over_tls_control_connection(server, far_end, style, client_tls):
    """connect(host, tls_port, secret, tls=context) authenticates over TLS (the socket is an
    SSLSocket that verified the certificate) and a call is answered through it."""
    with no_leaked_threads():
        srf = Srf()
        answered: queue.Queue = queue.Queue()
        ended: queue.Queue = queue.Queue()
        try:
            hostport = invoke(style, srf.connect, opts={"host": LOOPBACK, "port": server.tls_port,
                                                        "secret": SECRET, "tls": client_tls}).result(WAIT)
            hostport = hostport[0] if isinstance(hostport, tuple) else hostport
            assert f"{LOOPBACK}:{server.sip_port}" in hostport
            sock = srf.socket.conn.socket
            assert isinstance(sock, ssl.SSLSocket)
            assert sock.getpeercert()["subject"] == ((("commonName", "localhost"),),)
            _answer_calls(srf, style, answered, ended)
            _take_call(server, far_end, answered, ended)
        finally:
            srf.disconnect()


def test_plain_client_on_tls_port_is_not_connected(server):
    """A client without TLS on the TLS port never authenticates (no silent plain-text fallback)."""
    with no_leaked_threads():
        srf = Srf()
        srf.on("error", lambda *args: None)
        fut = srf.connect(host=LOOPBACK, port=server.tls_port, secret=SECRET,
                          reconnect=False, timeout=2.0)
        assert fut.exception(WAIT) is not None
        assert not srf.connected
        srf.disconnect()


def test_reconnect_after_server_restart_stays_on_tls(cert_files, far_end, client_tls):
    """The server is stopped and a new one started on the same ports: the app reconnects over
    TLS (only the TLS port is open to it), re-registers its route and takes a new call."""
    tls_port = free_port()
    first = ServerProcess(extra=_tls_args(tls_port, cert_files))
    second: ServerProcess | None = None
    events: queue.Queue = queue.Queue()
    answered: queue.Queue = queue.Queue()
    ended: queue.Queue = queue.Queue()
    with no_leaked_threads():
        srf = Srf()
        srf.on("connect", lambda err, *rest: events.put(("connect", err)))
        srf.on("reconnecting", lambda info: events.put(("reconnecting", info)))
        srf.on("error", lambda err: events.put(("error", err)))
        try:
            srf.connect(host=LOOPBACK, port=tls_port, secret=SECRET, tls=client_tls).result(WAIT)
            assert get(events, "the first connect event") == ("connect", None)
            _answer_calls(srf, "future", answered, ended)
            first.stop()
            second = ServerProcess(extra=_tls_args(tls_port, cert_files),
                                   admin_port=first.admin_port, sip_port=first.sip_port)
            seen = []
            while ("connect", None) not in seen:
                seen.append(get(events, "the app to reconnect", timeout=15))
            assert any(kind == "reconnecting" for kind, _ in seen), seen
            sock = srf.socket.conn.socket
            assert isinstance(sock, ssl.SSLSocket), f"reconnected without TLS: {sock!r}"
            assert sock.getpeername()[1] == tls_port
            _take_call(second, far_end, answered, ended)
        finally:
            srf.disconnect()
            first.stop()
            if second is not None:
                second.stop()


def test_embedded_server_tls_port(cert_files, client_tls):
    """EmbeddedServer(tls_port=0, tls_cert=..., tls_key=...) binds a TLS admin port apps can use."""
    cert, key = cert_files
    with EmbeddedServer(admin_port=0, sip_port=0, tls_port=0, tls_cert=str(cert),
                        tls_key=str(key)) as embedded:
        assert embedded.tls_port and embedded.tls_port != embedded.admin_port
        with no_leaked_threads():
            srf = Srf()
            try:
                hostport = srf.connect(host=LOOPBACK, port=embedded.tls_port, secret="cymru",
                                       tls=client_tls).result(WAIT)
                assert f":{embedded.sip_port}" in hostport
                assert isinstance(srf.socket.conn.socket, ssl.SSLSocket)
            finally:
                srf.disconnect()


def test_cli_tls_port_needs_a_certificate(capsys):
    """``--tls-port`` without ``--tls-cert`` is refused before anything is bound."""
    from drachtio_srf.server.__main__ import main
    assert main(["--port", "0", "--tls-port", "0"]) == 2
    assert "--tls-cert" in capsys.readouterr().err
