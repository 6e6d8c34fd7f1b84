"""Scale-out (#10): ``python -m drachtio_srf.runner -n 2 app.py`` starts two copies of an app on
one server, and the server shares new requests between them (round-robin over the connections
that routed the method)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from helpers import LOOPBACK, SECRET

APP = '''
import os, sys, threading
from drachtio_srf import Srf
srf = Srf()
worker = os.environ["DRACHTIO_WORKER"]
srf.options(lambda req, res: res.send(200, headers={"X-Worker": worker}))
srf.connect(host="127.0.0.1", port=int(sys.argv[1]), secret=sys.argv[2]).result(10)
sys.stdout.write(f"ready {worker}\\n")   # one write: the copies share the pipe (PYTHONUNBUFFERED
sys.stdout.flush()                        # would split print()'s pieces and interleave them)
stop = threading.Event()
import signal
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait(60)
srf.disconnect()
'''


def options(sip_port: int, n: int) -> str:
    branch = f"z9hG4bK{uuid.uuid4().hex}"
    return (f"OPTIONS sip:app@{LOOPBACK}:{sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{{port}};branch={branch}\r\n"
            f"From: <sip:t@{LOOPBACK}>;tag=t{n}\r\nTo: <sip:app@{LOOPBACK}>\r\n"
            f"Call-ID: runner-{uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n")


def test_two_copies_share_new_requests(server, tmp_path: Path):
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "drachtio_srf.runner", "-n", "2", str(app),
                             str(server.admin_port), SECRET], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        ready = {proc.stdout.readline().split()[1] for _ in range(2)}
        assert ready == {"0", "1"}
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.settimeout(8)
        port = sock.getsockname()[1]
        workers = []
        for n in range(6):
            sock.sendto(options(server.sip_port, n).replace("{port}", str(port)).encode(),
                        (LOOPBACK, server.sip_port))
            while True:
                text = sock.recv(65536).decode()
                if text.startswith("SIP/2.0 200"):
                    break
            workers += [line.split(":", 1)[1].strip() for line in text.split("\r\n")
                        if line.lower().startswith("x-worker:")]
        sock.close()
        assert sorted(workers) == ["0", "0", "0", "1", "1", "1"], workers
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
