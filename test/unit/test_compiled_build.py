"""The optional compiled build (docs/compiled.md): which modules a session really imported.

scripts/test-compiled.sh sets DRACHTIO_SRF_EXPECT_COMPILED=1 and runs this file with the rest of
its subset, so that run fails unless the sans-I/O modules came from the mypyc extensions; in
every other run the modules must be the pure-Python sources (the default that CI tests)."""
from __future__ import annotations

import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES

import pytest

import drachtio_srf.sip.attrdict

COMPILED = ("sip.errors", "sip.numbers", "sip.uri", "sip.headers", "sip.parser", "wire")
EXPECT_COMPILED = os.environ.get("DRACHTIO_SRF_EXPECT_COMPILED") == "1"


@pytest.mark.parametrize("name", COMPILED)
def test_sans_io_module_is_compiled_exactly_when_expected(name: str) -> None:
    module = importlib.import_module(f"drachtio_srf.{name}")
    path = module.__file__ or ""
    compiled = path.endswith(tuple(EXTENSION_SUFFIXES))
    assert compiled == EXPECT_COMPILED, (
        f"{module.__name__} was imported from {path} (compiled build expected: {EXPECT_COMPILED})")


def test_attrdict_stays_interpreted_in_both_builds() -> None:
    assert (drachtio_srf.sip.attrdict.__file__ or "").endswith(".py")
    message = importlib.import_module("drachtio_srf.sip.parser").SipMessage(
        "OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:x@y>;tag=1\r\n\r\n")
    from_ = message.get_parsed_header("from")
    assert type(from_) is drachtio_srf.sip.attrdict.AttrDict
    assert from_.params.tag == "1"
