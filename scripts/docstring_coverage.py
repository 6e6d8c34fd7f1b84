"""List every public name of drachtio_srf that the generated API reference shows undocumented.

    .venv/bin/python scripts/docstring_coverage.py              # report all; fail on STRICT ones
    .venv/bin/python scripts/docstring_coverage.py --all-strict # fail on any
    .venv/bin/python scripts/docstring_coverage.py drachtio_srf.dialog drachtio_srf.request

Names are read the way mkdocstrings reads them (griffe, static analysis): public modules,
classes, functions, methods, properties and attributes (an attribute is documented by a string
on the line after its assignment, or by ``:ivar name:`` / ``:var name:`` in its class docstring).
Events: for each ``emit("name", ...)`` / ``_emit`` / ``emit_on(key, obj, "name", ...)`` the event
must be named in backquotes (```name``) in the emitting class's or its module's docstring.

Each line of the report is ``path:line  qualified.name  (kind)``, grouped by module, with a
count per module. Exit status 1 when a module of ``STRICT`` (or any, with ``--all-strict``)
has an undocumented name. Needs the ``docs`` extra (griffe comes with mkdocstrings[python]).
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "drachtio_srf"

#: modules that must be fully documented now (the others are reported only)
STRICT = ("drachtio_srf.trace", "drachtio_srf.server.__main__")

_SKIP = {"logger", "log"}   # module loggers: logging.getLogger(__name__) says it all
_EMITTERS = {"emit", "_emit", "emit_on"}
_RECEIVERS = (("srf", "Srf"), ("dialog", "Dialog"), ("invite", "Request"),
              ("pending_uac", "Request"), ("req", "Request"), ("res", "Response"))


@dataclass(frozen=True)
class Missing:
    """One undocumented public name."""

    module: str
    path: str
    line: int
    name: str
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}  {self.name}  ({self.kind})"


def _documented_vars(cls: griffe.Class) -> set[str]:
    """Attribute names given with :ivar:/:var:/:cvar: in the class docstring."""
    text = cls.docstring.value if cls.docstring else ""
    return set(re.findall(r":(?:ivar|var|cvar)\s+(?:[^:]*\s)?(\w+):", text))


def _walk(obj: griffe.Object, module: griffe.Module) -> Iterator[Missing]:
    rel = str(Path(module.filepath).relative_to(ROOT)) if isinstance(module.filepath, Path) else "?"
    ivars = _documented_vars(obj) if isinstance(obj, griffe.Class) else set()
    for name, member in obj.members.items():
        if member.is_alias or name.startswith("_") or name in _SKIP:
            continue
        if isinstance(obj, griffe.Module) and not member.is_public:
            continue
        if isinstance(member, griffe.Module):
            continue  # walked as a module of its own
        kind = "property" if "property" in member.labels else member.kind.value
        if not member.docstring and name not in ivars:
            yield Missing(module.path, rel, member.lineno or 0, f"{obj.path}.{name}"
                          .removeprefix(module.path + "."), kind)
        if isinstance(member, griffe.Class):
            yield from _walk(member, module)


def _receiver_class(node: ast.expr, enclosing: str | None) -> str | None:
    text = ast.unparse(node)
    if text == "self":
        return enclosing
    last = text.split(".")[-1]
    for key, cls in _RECEIVERS:
        if last == key or last.endswith("_" + key) or (key == "srf" and "srf" in last):
            return cls
    return None


def _events(module: griffe.Module) -> Iterator[tuple[str, str, int]]:
    """(class name, event, line) of each event emitted in the module's source."""
    if not isinstance(module.filepath, Path):
        return
    tree = ast.parse(module.filepath.read_text())
    stack: list[tuple[ast.AST, str | None]] = [(tree, None)]
    while stack:
        node, cls = stack.pop()
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.ClassDef) else cls
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) \
                    and child.func.attr in _EMITTERS:
                args = child.args
                if child.func.attr == "emit_on" and len(args) >= 3:
                    target, event = _receiver_class(args[1], cls), args[2]
                elif child.func.attr != "emit_on" and args:
                    target, event = _receiver_class(child.func.value, cls), args[0]
                else:
                    target, event = None, None
                if target and isinstance(event, ast.Constant) and isinstance(event.value, str):
                    yield target, event.value, child.lineno
            stack.append((child, inner))


def check_module(module: griffe.Module, package: griffe.Module) -> list[Missing]:
    """Undocumented public names and events of one module."""
    rel = str(Path(module.filepath).relative_to(ROOT)) if isinstance(module.filepath, Path) else "?"
    missing: list[Missing] = []
    if not module.docstring:
        missing.append(Missing(module.path, rel, 1, module.path, "module"))
    missing.extend(_walk(module, module))
    seen: set[tuple[str, str]] = set()
    for cls_name, event, line in _events(module):
        if (cls_name, event) in seen or event in ("new_listener",):
            continue
        seen.add((cls_name, event))
        cls = _find_class(package, cls_name)
        texts = [module.docstring.value if module.docstring else ""]
        if cls is not None:
            texts.append(cls.docstring.value if cls.docstring else "")
            parent = cls.parent
            if isinstance(parent, griffe.Module) and parent.docstring:
                texts.append(parent.docstring.value)
        if not any(re.search(rf"`{re.escape(event)}\b", t) for t in texts):
            missing.append(Missing(module.path, rel, line, f"{cls_name} event '{event}'", "event"))
    return missing


def _find_class(package: griffe.Module, name: str) -> griffe.Class | None:
    for module in _modules(package):
        member = module.members.get(name)
        if isinstance(member, griffe.Class) and not member.is_alias:
            return member
    return None


def _modules(module: griffe.Module) -> Iterator[griffe.Module]:
    yield module
    for member in module.members.values():
        if isinstance(member, griffe.Module) and not member.is_alias:
            yield from _modules(member)


def main(argv: list[str] | None = None) -> int:
    """Print the report; 1 when a strict module has undocumented names."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("modules", nargs="*", help="modules to report (default: all of the package)")
    p.add_argument("--all-strict", action="store_true", help="fail on any undocumented name")
    p.add_argument("--strict", action="append", default=[], metavar="MODULE",
                   help=f"also fail on this module (always: {', '.join(STRICT)})")
    args = p.parse_args(argv)
    package = griffe.load(PACKAGE, search_paths=[str(ROOT)], docstring_parser="sphinx")
    assert isinstance(package, griffe.Module)
    modules = [m for m in _modules(package)
               if not args.modules or m.path in args.modules]
    strict = set(STRICT) | set(args.strict)
    failing = 0
    total = 0
    for module in sorted(modules, key=lambda m: m.path):
        missing = check_module(module, package)
        if not missing:
            continue
        total += len(missing)
        is_strict = args.all_strict or module.path in strict
        failing += len(missing) if is_strict else 0
        print(f"{module.path}: {len(missing)} undocumented{' (STRICT)' if is_strict else ''}")
        for item in missing:
            print(f"  {item}")
    print(f"{total} undocumented public names in {len(modules)} modules; "
          f"{failing} in strict modules")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
