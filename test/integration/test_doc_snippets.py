"""Every Python snippet of README.md and docs/*.md runs (issue 8.10).

A fenced block opened with ```` ```python ```` is run by ``doc_snippet_runner.py`` in its own
process, against embedded servers (the app's drachtio server stands at port 9022 in the snippets,
a phone that answers at 127.0.0.1:5090); the phone calls any app the snippet leaves with request
handlers.  A block opened with ```` ```python fragment ```` is an excerpt (a signature listing, a
piece of a larger app) and is not run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
RUNNER = Path(__file__).resolve().parent / "doc_snippet_runner.py"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def snippets() -> list[tuple[str, int, str, str]]:
    """(file name, line, info string, code) of every ```python block of the docs."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            words = m["info"].split()
            if words and words[0] == "python":
                line = text.count("\n", 0, m.start()) + 1
                out.append((doc.name, line, " ".join(words[1:]), m["body"]))
    return out


SNIPPETS = snippets()
RUN = [s for s in SNIPPETS if s[2] != "fragment"]
UNKNOWN = [s for s in SNIPPETS if s[2] not in ("", "fragment")]


def _param(snippet: tuple[str, int, str, str]) -> object:
    doc, line, _info, code = snippet
    marks = []
    if doc == "README.md" and "MY_SDP" in code:
        # README.md is edited by the lead: until the corrected first app is pasted in, this
        # snippet is known to fail (strict: the mark must go once it passes)
        marks.append(pytest.mark.xfail(strict=True, reason="README's first app uses an undefined MY_SDP"))
    return pytest.param(*snippet, marks=marks, id=f"{doc}:{line}")


def test_the_docs_have_runnable_snippets_and_only_known_markers():
    assert len(RUN) >= 10, [f"{s[0]}:{s[1]}" for s in RUN]
    assert not UNKNOWN, f"unknown fence markers (use 'python' or 'python fragment'): {UNKNOWN}"


@pytest.mark.parametrize("doc, line, info, code", [_param(s) for s in RUN])
def test_snippet_runs(doc, line, info, code, tmp_path):
    path = tmp_path / f"{Path(doc).stem}_{line}.py"
    path.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(RUNNER), str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=100, check=False, env=env)
    assert proc.returncode == 0 and "SNIPPET OK" in proc.stdout, (
        f"{doc}:{line} failed\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")


def _members(cls: type) -> set[str]:
    """Class attributes of ``cls`` and the instance attributes its methods assign (``self.x = ...``)."""
    import ast
    import inspect
    names = set(dir(cls))
    for klass in cls.__mro__:
        if klass.__module__.startswith("drachtio_srf"):
            for node in ast.walk(ast.parse(inspect.getsource(klass).lstrip())):
                if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                        and isinstance(node.value, ast.Name) and node.value.id == "self"):
                    names.add(node.attr)
    return names


def test_members_named_in_the_docs_exist():
    """``dialog.x``, ``req.x``, ``res.x``, ``srf.x`` written in backquotes in README.md and docs/
    name real members (docs/differences.md once named a ``dialog.callId`` that does not exist)."""
    from drachtio_srf import Dialog, Request, Response, Srf
    classes = {"dialog": Dialog, "uas": Dialog, "uac": Dialog, "req": Request, "res": Response, "srf": Srf}
    members = {name: _members(cls) for name, cls in classes.items()}
    missing = []
    for doc in DOCS:
        for code in re.findall(r"`([^`\n]+)`", doc.read_text(encoding="utf-8")):
            for m in re.finditer(r"\b(dialog|uas|uac|req|res|srf)\.([A-Za-z_]\w*)", code):
                if m[2] != "py" and m[2] not in members[m[1]]:
                    missing.append(f"{doc.name}: {m[0]} (in `{code}`)")
    assert not missing, missing


def test_the_docs_reference_only_files_of_the_repository():
    """README.md and docs/ point at no file outside the repository (such as a design folder
    next to the clone): every ``*.md`` they name is a file of the repository."""
    import subprocess
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False).stdout
    names = {Path(f).name for f in listed.split()} or {p.name for p in ROOT.rglob("*.md")}
    outside = []
    for doc in DOCS:
        for m in re.finditer(r"[\w./-]*\.md\b", doc.read_text(encoding="utf-8")):
            if "../" in m[0] or Path(m[0]).name not in names:
                outside.append(f"{doc.name}: {m[0]}")
    assert not outside, outside
