"""index.json's RFC 4475 decisions hold for the real drachtio-server (run only where one is built).

Set ``DRACHTIO_BIN`` to a drachtio-server binary (and ``DRACHTIO_CONF`` to a configuration file
it accepts, e.g. /path/to/drachtio.conf.xml: this build needs one); without it the test skips:
CI has no real server. Each message goes to a fresh server through scripts/rfc4475_probe.py.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
from pathlib import Path

import pytest
from test_rfc4475_server import _new_request_for_app

ROOT = Path(__file__).resolve().parent.parent.parent
INDEX = json.loads((ROOT / "test" / "data" / "rfc4475" / "index.json").read_text())["messages"]
BIN = os.environ.get("DRACHTIO_BIN")

pytestmark = pytest.mark.skipif(not BIN, reason="no real drachtio-server: set DRACHTIO_BIN (and DRACHTIO_CONF)")


def _probe_module():
    spec = importlib.util.spec_from_file_location("rfc4475_probe", ROOT / "scripts" / "rfc4475_probe.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(30)
@pytest.mark.parametrize("entry", INDEX, ids=[e["name"] for e in INDEX])
def test_real_server_does_what_index_says(entry: dict) -> None:
    probe = _probe_module()
    cmd = shlex.quote(str(BIN))
    if os.environ.get("DRACHTIO_CONF"):
        cmd += " -f " + shlex.quote(os.environ["DRACHTIO_CONF"])
    seen = probe.probe(cmd, entry["name"], 1.0, None, True)
    finals = [r for r in seen["responses"] if r != "-" and not r.startswith("1")]
    if entry["server"] == "400":
        assert finals[:1] == [f"400 {entry['reason']}"] and not seen["app"]
    elif entry["server"] == "drop":
        assert finals == [] and not seen["app"]
    else:
        assert not [r for r in finals if r[:3] in ("400", "505")]
        raw = (ROOT / "test" / "data" / "rfc4475" / f"{entry['name']}.dat").read_bytes()
        if _new_request_for_app(raw):
            assert seen["app"]
