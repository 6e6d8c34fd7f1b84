"""create_b2bua's B-leg From carries A's display name only when A quoted it, as drachtio-srf
does (issue 8.8): ``From: caller <sip:...>`` gives no display name on B, ``"Caller Q"`` is kept.

Two sipp far ends through the embedded server; B checks its INVITE's From header (sipp fails the
call when the check fails).
"""
from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import pytest
from helpers import LOOPBACK, SCENARIOS
from itest_support import get

A_BYE = (SCENARIOS / "b2b-a-bye.xml").read_text()
B_ANSWER = (SCENARIOS / "b2b-b-answer.xml").read_text()


def _scenarios(tmp_path: Path, a_from: str, checks: str) -> tuple[str, str]:
    a = tmp_path / "a.xml"
    a.write_text(A_BYE.replace("From: caller <", f"From: {a_from} <"))
    b = tmp_path / "b.xml"
    marker = '      <ereg regexp="[^ ].*" search_in="hdr" header="From:" assign_to="their_from"/>\n'
    assert marker in B_ANSWER
    b.write_text(B_ANSWER.replace(marker, marker + checks)
                 .replace('variables="offer,their_contact,their_from"',
                          'variables="offer,their_contact,their_from,from_ok,from_quote"'))
    return str(a), str(b)


NO_NAME = (
    # From: sip:caller@host;tag=... or <sip:caller@host>;tag=... - no display name, no quote
    '      <ereg regexp="^ *&lt;?sip:caller@" search_in="hdr" header="From:" check_it="true"'
    ' assign_to="from_ok"/>\n'
    '      <ereg regexp="&quot;" search_in="hdr" header="From:" check_it_inverse="true"'
    ' assign_to="from_quote"/>\n')
QUOTED = (
    '      <ereg regexp="^ *&quot;Caller Q&quot; *&lt;sip:caller@" search_in="hdr" header="From:"'
    ' check_it="true" assign_to="from_ok"/>\n'
    '      <ereg regexp="sipp" search_in="hdr" header="From:" check_it_inverse="true"'
    ' assign_to="from_quote"/>\n')


@pytest.mark.parametrize(("a_from", "checks", "name"), [
    ("caller", NO_NAME, ""),
    ("sipp", NO_NAME, ""),
    ('"Caller Q"', QUOTED, "Caller Q"),
], ids=["unquoted", "sipp-default", "quoted"])
def test_b_leg_from_display_name(srf: Any, server: Any, far_end: Any, tmp_path: Path,
                                 a_from: str, checks: str, name: str) -> None:
    a_path, b_path = _scenarios(tmp_path, a_from, checks)
    b = far_end(b_path)
    results: queue.Queue = queue.Queue()
    names: queue.Queue = queue.Queue()

    def on_invite(req: Any, res: Any) -> None:
        names.put(req.calling_name)
        fut = srf.create_b2bua(req, res, f"sip:callee@{LOOPBACK}:{b.port}")
        fut.add_done_callback(lambda f: results.put(f.exception() or f.result()))

    srf.invite(on_invite)
    a = far_end(a_path, server.sip_port)
    assert get(names, "the A INVITE") == name
    result = get(results, "the bridged call")
    assert not isinstance(result, BaseException), f"create_b2bua failed: {result!r}"
    result.uas.on("destroy", lambda *_: result.uac.destroy())
    a.expect_success()
    b.expect_success()
