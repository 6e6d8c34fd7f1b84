"""The project's tests use the drachtio_srf pytest plugin like any user: this loads it when it
is not registered through its entry point (a checkout used without `pip install -e .`, or
PYTEST_DISABLE_PLUGIN_AUTOLOAD set), and points the `sipp` fixture at test/scenarios/."""
from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest


def _registered() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.value == "drachtio_srf.testing.plugin" for ep in entry_points(group="pytest11"))


if not _registered():
    pytest_plugins = ["drachtio_srf.testing.plugin"]


@pytest.fixture
def sipp_scenario_dir() -> Path:
    """Relative sipp scenario names are those of test/scenarios/."""
    return Path(__file__).resolve().parent / "scenarios"
