"""``python -m drachtio_srf.server`` as a drop-in for drachtio-server: its options, its
configuration XML, its environment variables; what is not supported is named on stderr."""
from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import LOOPBACK, free_port, wait_for_tcp
from itest_support import WAIT

from drachtio_srf import Srf
from drachtio_srf.server.__main__ import ConfigError, gather, main, read_config_file, to_server_config

ROOT = Path(__file__).resolve().parents[2]

CONF = """<drachtio>
  <admin port="{admin}" secret="{secret}">127.0.0.1</admin>
  <sip>
    <contacts>
      <contact>sip:127.0.0.1:{sip};transport=udp,tcp</contact>
      <contact>sips:127.0.0.1:5061;transport=tls</contact>
    </contacts>
    <timers><t1>250</t1><t2>4000</t2></timers>
  </sip>
  <cdrs>true</cdrs>
  <logging>
    <console/>
    <loglevel>info</loglevel>
    <sofia-loglevel>3</sofia-loglevel>
  </logging>
</drachtio>
"""


class CliServer:
    """The server started from a command line; stderr lines are read as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DRACHTIO_")}
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen([sys.executable, "-m", "drachtio_srf.server", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=full_env)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text: str) -> str:
        """The first stderr line containing ``text`` (fails with all lines seen on exit/timeout)."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} after {WAIT}s: {self.seen}") from None
            if line is None:
                raise AssertionError(f"server exited ({self.proc.wait()}) without {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._pump.join(5)


@pytest.fixture
def cli_server():
    started: list[CliServer] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> CliServer:
        server = CliServer(args, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _connect(admin_port: int, secret: str) -> str:
    """Connect and authenticate an app; the server's SIP address it reports."""
    srf = Srf()
    try:
        return srf.connect(host=LOOPBACK, port=admin_port, secret=secret).result(WAIT)
    finally:
        srf.disconnect()


def test_config_file_sets_admin_port_secret_and_contact(cli_server, tmp_path):
    """-f drachtio.conf.xml: the server listens for apps on the file's admin address and port,
    checks its secret, serves its first contact, and names what it ignores."""
    admin, sip = free_port(), free_port()
    conf = tmp_path / "drachtio.conf.xml"
    conf.write_text(CONF.format(admin=admin, sip=sip, secret="from-file"))
    server = cli_server(["-f", str(conf)])
    warning = server.wait_for("ignoring")
    for name in ("sips:127.0.0.1:5061;transport=tls", "<timers><t2>", "<logging><sofia-loglevel>"):
        assert name in warning
    server.wait_for(f"listening for apps on 127.0.0.1:{admin}")
    assert f"127.0.0.1:{sip}" in _connect(admin, "from-file")


def test_command_line_overrides_file(cli_server, tmp_path):
    """--port and --secret on the command line win over the file's; the rest of the file holds."""
    file_admin, admin, sip = free_port(), free_port(), free_port()
    conf = tmp_path / "drachtio.conf.xml"
    conf.write_text(CONF.format(admin=file_admin, sip=sip, secret="from-file"))
    server = cli_server(["--file", str(conf), "--port", str(admin), "--secret", "from-cli"])
    server.wait_for(f"listening for apps on 127.0.0.1:{admin}")
    assert f"127.0.0.1:{sip}" in _connect(admin, "from-cli")


def test_unsupported_options_are_named_and_the_server_runs(cli_server):
    """drachtio-server options without an equivalent are accepted and listed on stderr."""
    admin, sip = free_port(), free_port()
    server = cli_server(["--port", str(admin), "--contact", f"sip:{LOOPBACK}:{sip};transport=udp",
                         "--daemon", "--homer", "127.0.0.1:9060", "--homer-id", "7",
                         "--sofia-loglevel", "3", "-u", "nobody"],
                        env={"DRACHTIO_HOMER_ID": "7"})
    warning = server.wait_for("ignoring")
    for name in ("--daemon", "--homer", "--homer-id", "--sofia-loglevel", "--user",
                 "DRACHTIO_HOMER_ID"):
        assert name in warning.replace(";", " ").replace(",", " ").split(), (name, warning)
    server.wait_for(f"listening for apps on 127.0.0.1:{admin}")
    assert f"{LOOPBACK}:{sip}" in _connect(admin, "cymru")


def test_version_prints_and_exits():
    """--version (and -v) print the version and exit 0, as drachtio-server's do."""
    for flag in ("--version", "-v"):
        out = subprocess.run([sys.executable, "-m", "drachtio_srf.server", flag], check=False,
                             cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("drachtio_srf.server 0.") and "v0.9" in out.stdout


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 9022)", "(default: 127.0.0.1)", "(default: cymru)",
                    "(default: sip:127.0.0.1:5060;transport=udp,tcp)", "(default: info)"):
        assert default in text


def test_precedence_defaults_file_env_command_line(tmp_path):
    """File < DRACHTIO_* environment < command line; contacts on the command line replace the
    file's; t1 and cdrs come from the file; certificate files from the environment."""
    conf = tmp_path / "c.xml"
    conf.write_text(CONF.format(admin=1111, sip=2222, secret="file"))
    env = {"DRACHTIO_ADMIN_TCP_PORT": "3333", "DRACHTIO_ADMIN_ADDRESS": "127.0.0.2"}
    config = to_server_config(gather(["-f", str(conf)], env)[0])
    assert (config.admin_host, config.admin_port, config.secret) == ("127.0.0.2", 3333, "file")
    assert (config.sip_host, config.sip_port, config.transports) == ("127.0.0.1", 2222, ("udp", "tcp"))
    assert config.t1 == 0.25 and config.cdrs is True
    config = to_server_config(gather(["-f", str(conf), "-p", "4444",
                                      "-c", "sip:127.0.0.3:5555;transport=tcp"], env)[0])
    assert config.admin_port == 4444
    assert (config.sip_host, config.sip_port, config.transports) == ("127.0.0.3", 5555, ("tcp",))
    wildcard = to_server_config(gather(["-c", "sip:*:5070"], {})[0])   # every interface
    assert (wildcard.sip_host, wildcard.sip_port) == ("0.0.0.0", 5070) and wildcard.external_host
    settings = gather([], {"DRACHTIO_CONFIG_FILE_PATH": str(conf)})[0]
    assert settings.port == 1111
    assert gather(["--noconfig"], {"DRACHTIO_CONFIG_FILE_PATH": str(conf)})[0].port is None


def test_bad_configuration_is_a_clear_error(tmp_path, capsys):
    """A missing or malformed file, or no usable contact, exits 2 with a message naming it."""
    assert main(["-f", str(tmp_path / "missing.xml")], {}) == 2
    assert "cannot read configuration file" in capsys.readouterr().err
    bad = tmp_path / "bad.xml"
    bad.write_text("<drachtio><admin port='x'>127.0.0.1</admin></drachtio>")
    assert main(["-f", str(bad)], {}) == 2
    assert "<admin port>: 'x' is not a number" in capsys.readouterr().err
    bad.write_text("<drachtio><admin")
    with pytest.raises(ConfigError, match="not valid XML"):
        read_config_file(str(bad))
    assert main(["--contact", "sip:127.0.0.1;transport=ws"], {}) == 2
    assert "no usable SIP contact" in capsys.readouterr().err


def test_limit_options_reach_the_server_and_an_unauthenticated_app_is_dropped(cli_server):
    """--auth-timeout/--max-pending/--max-transactions/--retry-after set the server's limits; a
    connection that never authenticates is closed after --auth-timeout."""
    config = to_server_config(gather(["--auth-timeout", "0.3", "--max-pending", "7",
                                      "--max-transactions", "99", "--retry-after", "11"], {})[0])
    assert (config.auth_timeout, config.max_pending, config.max_transactions, config.retry_after) == \
        (0.3, 7, 99, 11)
    defaults = to_server_config(gather([], {})[0])
    assert (defaults.auth_timeout, defaults.max_pending) == (5.0, 2000)
    admin, sip = free_port(), free_port()
    cli_server(["--port", str(admin), "--contact", f"sip:{LOOPBACK}:{sip};transport=udp",
                "--auth-timeout", "0.3"])
    wait_for_tcp(admin)
    with socket.create_connection((LOOPBACK, admin), timeout=WAIT) as sock:
        assert sock.recv(100) == b""      # closed by the server, not by our timeout
