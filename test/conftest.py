"""Loads the drachtio_srf pytest plugin when it is not registered through its entry point (a
checkout used without `pip install -e .`, or PYTEST_DISABLE_PLUGIN_AUTOLOAD set)."""
from __future__ import annotations

import os
from importlib.metadata import entry_points


def _registered() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.value == "drachtio_srf.testing.plugin" for ep in entry_points(group="pytest11"))


pytest_plugins = [] if _registered() else ["drachtio_srf.testing.plugin"]
