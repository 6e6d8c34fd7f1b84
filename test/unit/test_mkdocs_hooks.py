"""scripts/mkdocs_hooks.py: navigation entries of missing pages are dropped; bracketed plain text
is escaped for mkdocs-autorefs, code and real links are not touched."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
assert _spec is not None and _spec.loader is not None
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)


def test_nav_entries_of_missing_pages_are_dropped(tmp_path):
    (tmp_path / "index.md").write_text("# x")
    (tmp_path / "uas.md").write_text("# x")
    config = {"docs_dir": str(tmp_path), "nav": [
        {"Overview": "index.md"},
        {"Features": [{"UAS": "uas.md"}, {"Testing": "testing.md"}]},
        {"Porting": "porting.md"},
        {"Only missing": [{"A": "a.md"}]},
        {"Site": "https://example.org/"},
    ]}
    out = hooks.on_config(config)
    assert out["nav"] == [{"Overview": "index.md"}, {"Features": [{"UAS": "uas.md"}]},
                          {"Site": "https://example.org/"}]


def test_bracketed_text_is_escaped_but_not_code_links_or_identifiers():
    lines = ["| a | test::x [cb+F]; other |",
             "see [the docs](uas.md) and [drachtio_srf.Srf][] and [Srf]",
             "code `d[a, b]` stays",
             "```",
             "x = [1, 2] [cb+F]",
             "```"]
    md = "\n".join(lines)
    out = hooks.on_page_markdown(md).split("\n")
    assert out[0] == "| a | test::x \\[cb+F\\]; other |"
    assert out[1] == "see [the docs](uas.md) and [drachtio_srf.Srf][] and [Srf]"
    assert out[2] == "code `d[a, b]` stays"
    assert out[4] == "x = [1, 2] [cb+F]"
