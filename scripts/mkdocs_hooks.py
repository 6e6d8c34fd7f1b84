"""MkDocs hooks (mkdocs.yml ``hooks:``).

* The navigation names every page where it belongs; an entry whose file is not in docs/ (yet)
  is dropped with an INFO line instead of failing the strict build.
* Bracketed plain text such as ``[cb+F]`` is escaped so that mkdocs-autorefs does not take it
  for a cross-reference.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any

log = logging.getLogger("mkdocs.hooks.nav")


def _prune(items: list[Any], docs_dir: str) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            (title, value), = item.items()
            if isinstance(value, list):
                value = _prune(value, docs_dir)
                if value:
                    kept.append({title: value})
                continue
            item_path = value
        else:
            item_path = item
        if isinstance(item_path, str) and item_path.endswith(".md") and \
                not os.path.exists(os.path.join(docs_dir, item_path)):
            log.info("page %s is not in %s: left out of the navigation", item_path, docs_dir)
            continue
        kept.append(item)
    return kept


def on_config(config: Any, **kwargs: Any) -> Any:
    """Drop navigation entries whose page does not exist."""
    if config.get("nav"):
        config["nav"] = _prune(config["nav"], config["docs_dir"])
    return config


# "[cb+F]" in a table is plain text to a reader, but mkdocs-autorefs takes every unresolved
# "[...]" for a cross-reference and warns (a failure in strict mode). Bracketed text that cannot
# be an identifier is escaped; code spans and fenced blocks are left alone.
_BRACKETS = re.compile(r"(?<![\\\]!])\[([^\]\[\n]+)\](?![(\[:])")
_CODE_SPAN = re.compile(r"(`+).*?\1")


def _escape_text(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        inner = m.group(1)
        return m.group(0) if re.fullmatch(r"[\w.]+", inner) else f"\\[{inner}\\]"
    out, pos = [], 0
    for code in _CODE_SPAN.finditer(text):
        out.append(_BRACKETS.sub(repl, text[pos:code.start()]))
        out.append(code.group(0))
        pos = code.end()
    out.append(_BRACKETS.sub(repl, text[pos:]))
    return "".join(out)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Escape bracketed plain text outside code so autorefs does not take it for a reference."""
    lines, fenced = [], False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            lines.append(line)
        else:
            lines.append(line if fenced else _escape_text(line))
    return "\n".join(lines)
